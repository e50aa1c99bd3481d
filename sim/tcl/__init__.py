"""The TCL stub environment generated scripts are checked in (data: stubs.tcl)."""
