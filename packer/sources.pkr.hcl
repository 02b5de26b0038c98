# The base image comes from the same public SSM parameter the SSM BuildImage document resolves,
# so both paths start from the same AMI on the same day.
data "amazon-parameterstore" "base_ami" {
  region = var.region
  name = lookup({
    al2023     = "/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-x86_64"
    ubuntu2404 = "/aws/service/canonical/ubuntu/server/24.04/stable/current/amd64/hvm/ebs-gp3/ami-id"
  }, var.base)
}

locals {
  # Packer's timestamp() is UTC; the name must be unique per build, the tags say the rest.
  build_time = formatdate("YYYYMMDD'T'hhmmss'Z'", timestamp())
  # The docker builder's starting points: the container images of the same distributions.
  container_image = lookup({
    al2023     = "public.ecr.aws/amazonlinux/amazonlinux:2023"
    ubuntu2404 = "public.ecr.aws/ubuntu/ubuntu:24.04"
  }, var.base)
  # Root device of each base: naming another device would add a second volume, not size the root.
  root_device = lookup({ al2023 = "/dev/xvda", ubuntu2404 = "/dev/sda1" }, var.base)
  # The user Packer's Session Manager tunnel logs in as.
  ssh_username = lookup({ al2023 = "ec2-user", ubuntu2404 = "ubuntu" }, var.base)
  provenance = {
    "Name"                      = "bakehouse-${var.family}-${local.build_time}"
    "bakehouse:family"          = var.family
    "bakehouse:source-ami"      = data.amazon-parameterstore.base_ami.value
    "bakehouse:commit"          = var.scripts_commit
    "bakehouse:build-date"      = local.build_time
    "bakehouse:build-execution" = "packer-${local.build_time}"
    "bakehouse:built-by"        = "packer"
    # The memory-capture tool the image carries (also in /etc/bakehouse/memory-capture on the instance).
    "bakehouse:avml-version" = var.avml_version
    "bakehouse:avml-sha256"  = var.avml_sha256
  }
}

source "amazon-ebs" "golden" {
  region        = var.region
  source_ami    = data.amazon-parameterstore.base_ami.value
  instance_type = var.instance_type
  ami_name      = "bakehouse-${var.family}-${local.build_time}"
  ami_description = "Bakehouse ${var.family} from ${data.amazon-parameterstore.base_ami.value} at ${var.scripts_commit}"

  # Private subnet, no public address: the only way in is the Session Manager tunnel below.
  subnet_id                   = var.subnet_id
  security_group_id           = var.security_group_id
  associate_public_ip_address = false
  iam_instance_profile        = var.instance_profile
  communicator                = "ssh"
  ssh_interface               = "session_manager"
  ssh_username                = local.ssh_username
  pause_before_ssm            = "30s"
  session_manager_port        = 8022

  # IMDSv2 only, on the build instance and on every instance launched from the image.
  metadata_options {
    http_endpoint               = "enabled"
    http_tokens                 = "required"
    http_put_response_hop_limit = 1
    instance_metadata_tags      = "disabled"
  }
  imds_support = "v2.0"

  # Encrypted with the factory key; the snapshots (and so the AMI) inherit it.
  encrypt_boot = true
  kms_key_id   = var.kms_key_id
  launch_block_device_mappings {
    device_name           = local.root_device
    volume_size           = var.volume_size
    volume_type           = "gp3"
    encrypted             = true
    kms_key_id            = var.kms_key_id
    delete_on_termination = true
  }

  tags            = local.provenance
  snapshot_tags   = local.provenance
  run_tags        = merge(local.provenance, { "bakehouse:purpose" = "packer-build" })
  run_volume_tags = local.provenance
}

source "docker" "local" {
  image  = local.container_image
  commit = true
  # The container is a fast rehearsal of the scripts, not an image anyone runs.
  changes = [
    "LABEL bakehouse.family=${var.family} bakehouse.commit=${var.scripts_commit} bakehouse.built-by=packer-docker",
  ]
}
