"""The build account's components: the golden-image factory, its network, keys, schedules and catalog."""
