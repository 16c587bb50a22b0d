# Shared by the scripts that install or download Debian packages (source
# it, don't run it). Sets:
#   SUDO          "sudo" unless we are root
#   APT_DOWNLOAD  `apt-get download` that works as root too (as root, apt
#                 warns that its _apt user cannot write the target
#                 directory; downloading as root is what we want)
# shellcheck shell=bash

SUDO=
if [ "$(id -u)" -ne 0 ]; then
    SUDO=sudo
fi
APT_DOWNLOAD=(apt-get download -q)
if [ "$(id -u)" -eq 0 ]; then
    APT_DOWNLOAD+=(-o APT::Sandbox::User=root)
fi
