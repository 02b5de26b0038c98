# Inputs of both builders. Values that differ per account come from a .pkrvars.hcl file or -var;
# nothing secret lives here.

variable "base" {
  type        = string
  default     = "al2023"
  description = "Base operating system: al2023 (Amazon Linux 2023, dnf) or ubuntu2404 (Ubuntu 24.04, apt)."
  validation {
    condition     = contains(["al2023", "ubuntu2404"], var.base)
    error_message = "The base must be al2023 or ubuntu2404."
  }
}

variable "family" {
  type        = string
  default     = "al2023-base"
  description = "Image family; names the AMI and its /bakehouse/images/<family>/latest parameter."
  validation {
    # The same pattern as the SSM BuildImage document's Family parameter.
    condition     = can(regex("^[a-z][a-z0-9-]{1,30}$", var.family))
    error_message = "The family must be 2-31 lower-case letters, digits and hyphens, starting with a letter."
  }
}

variable "region" {
  type        = string
  default     = "eu-west-1"
  description = "Region of the build (the build account's home region)."
  validation {
    condition     = can(regex("^[a-z]{2}(-gov)?-[a-z]+-[0-9]$", var.region))
    error_message = "The region must look like eu-west-1."
  }
}

variable "kms_key_id" {
  type        = string
  description = "ARN of the factory's customer-managed KMS key; the AMI's snapshots are encrypted with it."
  validation {
    condition     = can(regex("^arn:aws[a-z-]*:kms:[a-z0-9-]+:[0-9]{12}:key/[0-9a-f-]{36}$", var.kms_key_id))
    error_message = "The kms_key_id must be a KMS key ARN (arn:aws:kms:<region>:<account>:key/<uuid>), never an alias or the AWS-managed key."
  }
}

variable "subnet_id" {
  type        = string
  description = "Private build subnet (no public IP; egress only through the filtering layer)."
  validation {
    condition     = can(regex("^subnet-[0-9a-f]{8,17}$", var.subnet_id))
    error_message = "The subnet_id must be a subnet id (subnet-...)."
  }
}

variable "security_group_id" {
  type        = string
  description = "Build security group: egress to the proxy and VPC endpoints only, no ingress."
  validation {
    condition     = can(regex("^sg-[0-9a-f]{8,17}$", var.security_group_id))
    error_message = "The security_group_id must be a security group id (sg-...)."
  }
}

variable "instance_profile" {
  type        = string
  description = "Build instance profile (SSM managed-instance core permissions); the Session Manager tunnel needs it."
  validation {
    condition     = can(regex("^[A-Za-z0-9+=,.@_-]{1,128}$", var.instance_profile))
    error_message = "The instance_profile must be an instance profile name."
  }
}

variable "instance_type" {
  type        = string
  default     = "t3.medium"
  description = "Build instance type (x86_64; the base parameters are the amd64 images)."
  validation {
    condition     = can(regex("^[a-z][a-z0-9-]*[0-9][a-z0-9-]*\\.[a-z0-9]+$", var.instance_type))
    error_message = "The instance_type must look like t3.medium."
  }
}

variable "scripts_commit" {
  type        = string
  default     = "unversioned"
  description = "Commit of packer/ the build runs; recorded in the image and its provenance tags."
  validation {
    condition     = can(regex("^([0-9a-f]{7,40}|unversioned)$", var.scripts_commit))
    error_message = "The scripts_commit must be a git commit id (7-40 hex characters)."
  }
}

variable "volume_size" {
  type        = number
  default     = 16
  description = "Root volume size in GiB."
  validation {
    condition     = var.volume_size >= 8 && var.volume_size <= 256
    error_message = "The volume_size must be between 8 and 256 GiB."
  }
}

variable "twin_repository" {
  type        = string
  description = "ECR repository URL the container twin is pushed to (the build stack's packerTwinRepository)."
  validation {
    condition     = can(regex("^[0-9]{12}\\.dkr\\.ecr\\.[a-z0-9-]+\\.amazonaws\\.com/[a-z0-9._/-]+$", var.twin_repository))
    error_message = "The twin_repository must be a private ECR repository URL (<account>.dkr.ecr.<region>.amazonaws.com/<name>)."
  }
}

# The memory-capture tool's pins (bakehouse:factory.memoryCapture). tools/release.py records them on the
# Packer bundle; the buildspec stages that AVML object beside the scripts and passes them here. No
# default: an image without its memory-capture tool is not a golden image.
variable "avml_version" {
  type        = string
  description = "Pinned AVML release installed by scripts/55-memory-capture.sh; tags the AMI bakehouse:avml-version."
  validation {
    condition     = can(regex("^[0-9]+\\.[0-9]+\\.[0-9]+(-[0-9A-Za-z.-]+)?$", var.avml_version))
    error_message = "The avml_version must be a release version like 0.14.0."
  }
}

variable "avml_sha256" {
  type        = string
  description = "SHA-256 of the pinned AVML build; installed only if it matches, tags the AMI bakehouse:avml-sha256."
  validation {
    condition     = can(regex("^[0-9a-f]{64}$", var.avml_sha256))
    error_message = "The avml_sha256 must be 64 lower-case hex digits."
  }
}
