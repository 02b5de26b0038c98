# One build, two sources. Both upload the same packer/scripts/ and packer/validation/ and run the
# same entrypoints the SSM BuildImage/ValidateImage documents run; only BAKEHOUSE_CONTEXT differs,
# because a container has no systemd and the EC2 build instance still carries Packer's SSH tunnel.
build {
  name    = "bakehouse"
  sources = ["source.amazon-ebs.golden", "source.docker.local"]

  # The Amazon Linux container image is minimal: the scripts need find, cmp and stat to even start.
  provisioner "shell" {
    only   = ["docker.local"]
    inline = ["if command -v dnf >/dev/null 2>&1; then dnf install -y -q findutils diffutils procps-ng tar gzip; fi"]
  }

  provisioner "shell" {
    inline = ["mkdir -p /tmp/bakehouse"]
  }

  provisioner "file" {
    sources     = ["${path.root}/scripts", "${path.root}/validation"]
    destination = "/tmp/bakehouse/"
  }

  # scripts/tools/avml-<version> is the AVML object the buildspec staged; 55-memory-capture.sh installs
  # it only if its SHA-256 is avml_sha256.
  provisioner "shell" {
    environment_vars = ["BAKEHOUSE_SCRIPTS_VERSION=${var.scripts_commit}", "BAKEHOUSE_AVML_VERSION=${var.avml_version}", "BAKEHOUSE_AVML_SHA256=${var.avml_sha256}"]
    execute_command  = "chmod +x {{ .Path }}; sudo env {{ .Vars }} bash -e '{{ .Path }}'"
    inline           = ["chmod +x /tmp/bakehouse/scripts/*.sh /tmp/bakehouse/validation/*.sh", "/tmp/bakehouse/scripts/provision.sh"]
    only             = ["amazon-ebs.golden"]
  }

  provisioner "shell" {
    environment_vars = ["BAKEHOUSE_CONTEXT=build"]
    execute_command  = "chmod +x {{ .Path }}; sudo env {{ .Vars }} bash -e '{{ .Path }}'"
    inline           = ["/tmp/bakehouse/validation/validate.sh"]
    only             = ["amazon-ebs.golden"]
  }

  # Containers run as root and have no sudo.
  provisioner "shell" {
    environment_vars = ["BAKEHOUSE_SCRIPTS_VERSION=${var.scripts_commit}", "BAKEHOUSE_AVML_VERSION=${var.avml_version}", "BAKEHOUSE_AVML_SHA256=${var.avml_sha256}"]
    inline           = ["chmod +x /tmp/bakehouse/scripts/*.sh /tmp/bakehouse/validation/*.sh", "/tmp/bakehouse/scripts/provision.sh"]
    only             = ["docker.local"]
  }

  provisioner "shell" {
    environment_vars = ["BAKEHOUSE_CONTEXT=container"]
    inline           = ["/tmp/bakehouse/validation/validate.sh"]
    only             = ["docker.local"]
  }

  provisioner "shell" {
    inline = ["rm -rf /tmp/bakehouse"]
  }

  # The container twin goes to ECR (immutable tags, Inspector enhanced scanning on push); the
  # buildspec waits for its scan before it builds the AMI. docker-push logs in to ECR itself.
  post-processors {
    post-processor "docker-tag" {
      only       = ["docker.local"]
      repository = var.twin_repository
      tags       = ["${var.family}-${var.scripts_commit}-${local.build_time}"]
    }
    post-processor "docker-push" {
      only         = ["docker.local"]
      ecr_login    = true
      login_server = "https://${split("/", var.twin_repository)[0]}"
    }
  }

  post-processor "manifest" {
    output     = "${path.root}/manifest.json"
    strip_path = true
    custom_data = {
      family     = var.family
      commit     = var.scripts_commit
      source_ami = data.amazon-parameterstore.base_ami.value
    }
  }
}
