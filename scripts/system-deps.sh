#!/usr/bin/env bash
# The system tools vitfpga needs that PyPI does not ship: Icarus Verilog, g++ and tclsh (Debian
# package `tcl`, which runs the static checks of the generated Vivado / Vitis HLS TCL).
# Installed from Debian's packages when missing and running as root; otherwise named clearly.
set -euo pipefail
missing=()
command -v iverilog >/dev/null 2>&1 || missing+=(iverilog)
command -v g++ >/dev/null 2>&1 || missing+=(g++)
command -v tclsh >/dev/null 2>&1 || missing+=(tcl)
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "installing Debian packages: ${missing[*]}"
    apt-get update -q >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}" >/dev/null
else
    echo "vitfpga needs these system packages: ${missing[*]}; install them (Debian/Ubuntu: sudo apt-get install ${missing[*]}) and run make again" >&2
    exit 1
fi
