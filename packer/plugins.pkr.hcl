# Plugins held to one major version (new majors break templates); `packer init .` installs them.
packer {
  required_version = ">= 1.10.0"
  required_plugins {
    amazon = {
      source  = "github.com/hashicorp/amazon"
      version = ">= 1.3.0, < 2.0.0"
    }
    docker = {
      source  = "github.com/hashicorp/docker"
      version = ">= 1.1.0, < 2.0.0"
    }
  }
}
