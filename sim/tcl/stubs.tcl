# The stub environment vitfpga.sim.tclsh runs a generated Vivado or Vitis HLS script in.
#
# Usage: tclsh stubs.tcl LOG SCRIPT BOARD_FILES FILES_EXIST RUNS_COMPLETE TOOL_LABEL \
#            VALUE_OPTIONS SLAVE_SEGMENTS STUBS KEEP PINNED_IPS PIN_SEGMENTS BOARD_PARTS \
#            IP_VERSIONS
#
#   LOG             file the calls are written to, one JSON object a line
#   SCRIPT          the script to run
#   BOARD_FILES     1/0: whether get_board_parts finds the board
#   FILES_EXIST     1/0: what `file exists` (isfile, isdirectory, readable) answers
#   RUNS_COMPLETE   1/0: whether runs report a written bitstream
#   TOOL_LABEL      the tool's name in messages ("Vivado", "Vitis HLS")
#   VALUE_OPTIONS   list of the options that take a value
#   SLAVE_SEGMENTS  flat list of {port map segment} triples: the address segments
#                   `get_bd_addr_segs -of_objects` returns for a PS slave port
#   STUBS           list of the tool commands to stub
#   KEEP            list of the global commands the script may see; all others are hidden
#   PINNED_IPS      1/0: whether get_ipdefs finds an exact VLNV (no `*`); a glob finds the
#                   versions in IP_VERSIONS
#   PIN_SEGMENTS    1/0: whether `get_bd_addr_segs -of_objects` finds an interface pin's
#                   segments (0: nothing; only an explicit segment path finds one)
#   BOARD_PARTS     list of the installed board parts a get_board_parts glob matches
#   IP_VERSIONS     list of the versions a get_ipdefs VLNV glob finds, in catalogue (not
#                   version) order
#
# Every list argument is made of plain words (letters, digits, `_`, `-`; board parts and
# versions also `.` and `:`).

namespace eval ::__vf {
    variable log [open [lindex $::argv 0] w]
    fconfigure $log -encoding utf-8
    variable script [lindex $::argv 1]
    variable board_files [lindex $::argv 2]
    variable files_exist [lindex $::argv 3]
    variable runs_complete [lindex $::argv 4]
    variable tool_label [lindex $::argv 5]
    variable value_options [lindex $::argv 6]
    variable project project_1
    variable jmap [list "\\" "\\\\" "\"" "\\\""]
    for {set i 0} {$i < 32} {incr i} {
        lappend jmap [format %c $i] [format "\\u%04x" $i]
    }
    # port -> {map segment map segment ...}
    variable slave_segments [dict create]
    foreach {port map name} [lindex $::argv 7] {
        dict lappend slave_segments $port $map $name
    }
    variable stubs [lindex $::argv 8]
    variable keep [lindex $::argv 9]
    variable pinned_ips [lindex $::argv 10]
    variable pin_segments [lindex $::argv 11]
    variable board_parts [lindex $::argv 12]
    variable ip_versions [lindex $::argv 13]
    # The script sees only the first six arguments, as before the data moved to argv.
    set ::argv [lrange $::argv 0 5]
    set ::argc [llength $::argv]
}

proc ::__vf::json {s} {
    variable jmap
    return "\"[string map $jmap $s]\""
}

proc ::__vf::record {name arglist} {
    variable log
    set a {}
    set items {}
    foreach x $arglist {
        lappend a [json $x]
        if {[string is list $x]} {
            set e {}
            foreach y $x {
                lappend e [json $y]
            }
            lappend items "\[[join $e ,]\]"
        } else {
            lappend items null
        }
    }
    puts $log "{\"cmd\": [json $name], \"args\": \[[join $a ,]\], \"items\": \[[join $items ,]\]}"
    flush $log
}

proc ::__vf::positional {arglist} {
    variable value_options
    set out {}
    set skip 0
    foreach a $arglist {
        if {$skip} {
            set skip 0
        } elseif {[string match -* $a] && ![string is double -strict $a]} {
            set skip [expr {[lsearch -exact $value_options $a] >= 0}]
        } else {
            lappend out $a
        }
    }
    return $out
}

proc ::__vf::optval {arglist opt} {
    set i [lsearch -exact $arglist $opt]
    if {$i < 0} {
        return ""
    }
    return [lindex $arglist [expr {$i + 1}]]
}

proc ::__vf::segments {objects} {
    variable slave_segments
    variable pin_segments
    set out {}
    if {!$pin_segments} {
        return $out
    }
    foreach o $objects {
        set o [string trimleft $o /]
        set parts [split $o /]
        set cell [lindex $parts 0]
        set port [lindex $parts end]
        if {[dict exists $slave_segments $port]} {
            foreach {map n} [dict get $slave_segments $port] {
                lappend out "/$cell/$map/$n"
            }
        } else {
            lappend out "/$o/Reg"
        }
    }
    return $out
}

# An explicit segment path (cell/interface-or-map/segment) names a segment that exists: a
# register file (Reg: Xilinx and HLS IPs; reg0: a module reference) or a PS slave's segment.
proc ::__vf::segment_exists {path} {
    variable slave_segments
    set parts [split [string trimleft $path /] /]
    if {[llength $parts] != 3} {
        return 0
    }
    lassign $parts cell map name
    if {$name in {Reg reg0}} {
        return 1
    }
    dict for {port pairs} $slave_segments {
        foreach {m n} $pairs {
            if {$m eq $map && $n eq $name} {
                return 1
            }
        }
    }
    return 0
}

proc ::__vf::ipdefs {patterns} {
    variable pinned_ips
    variable ip_versions
    set out {}
    foreach p $patterns {
        if {[string match {*:\*} $p]} {
            set stem [string range $p 0 end-1]
            foreach v $ip_versions {
                lappend out $stem$v
            }
        } elseif {$pinned_ips} {
            lappend out $p
        }
    }
    return $out
}

proc ::__vf::board_parts {patterns} {
    variable board_files
    variable board_parts
    set out {}
    if {!$board_files} {
        return $out
    }
    foreach p $patterns {
        if {[string first * $p] < 0} {
            lappend out $p
        } else {
            lappend out {*}[lsearch -all -inline -glob $board_parts $p]
        }
    }
    return $out
}

proc ::__vf::property {prop obj} {
    variable runs_complete
    set obj [string trimleft $obj /]
    switch -- [string toupper $prop] {
        PROGRESS {
            if {$runs_complete} { return "100%" }
            return "0%"
        }
        STATUS {
            if {!$runs_complete} { return "synth_design ERROR" }
            if {[string match *synth* $obj]} { return "synth_design Complete!" }
            return "write_bitstream Complete!"
        }
        DIRECTORY { return "/stub/runs/$obj" }
        NAME { return $obj }
        default { return "stub_value" }
    }
}

proc ::__vf::result {name arglist} {
    variable project
    variable board_files
    set pos [positional $arglist]
    switch -- $name {
        create_project - open_project {
            set project [lindex $pos 0]
            return $project
        }
        current_project { return $project }
        current_fileset { return sources_1 }
        current_bd_instance { return / }
        get_board_parts { return [board_parts $pos] }
        get_board_part_interfaces {
            if {$board_files} { return $pos }
            return ""
        }
        get_ipdefs { return [ipdefs $pos] }
        create_bd_cell - create_bd_design { return "/[lindex $pos end]" }
        get_bd_addr_segs {
            set of [optval $arglist -of_objects]
            if {$of ne ""} { return [segments $of] }
            set out {}
            foreach p $pos {
                if {[segment_exists $p]} { lappend out "/[string trimleft $p /]" }
            }
            return $out
        }
        get_property { return [property [lindex $pos 0] [lindex $pos 1]] }
        make_wrapper {
            set f [optval $arglist -files]
            return "/stub/hdl/[file rootname [file tail $f]]_wrapper.v"
        }
        version { return 2022.2 }
        default {
            if {[string match get_* $name] || [string match current_* $name]} {
                if {[llength $pos]} { return $pos }
                set of [optval $arglist -of_objects]
                if {$of ne ""} { return "$of/stub" }
                return "stub_$name"
            }
            return ""
        }
    }
}

proc ::__vf::stub {name args} {
    record $name $args
    return [result $name $args]
}

foreach ::__vf::cmd $::__vf::stubs {
    interp alias {} ::$::__vf::cmd {} ::__vf::stub $::__vf::cmd
}

rename ::file ::__vf::file
proc ::file {sub args} {
    switch -- $sub {
        exists - isfile - isdirectory - readable {
            ::__vf::record file [linsert $args 0 $sub]
            return $::__vf::files_exist
        }
        copy - delete - mkdir - rename - link - attributes - mtime - atime - tempfile {
            ::__vf::record file [linsert $args 0 $sub]
            return ""
        }
        default { return [::__vf::file $sub {*}$args] }
    }
}
rename ::puts ::__vf::puts
proc ::puts {args} {
    ::__vf::record puts $args
    ::__vf::puts {*}$args
}
rename ::cd ::__vf::cd
proc ::cd {args} {
    ::__vf::record cd $args
}
rename ::exit ::__vf::exit
proc ::exit {args} {
    ::__vf::record exit $args
}
rename ::unknown ::__vf::unknown
proc ::unknown {name args} {
    ::__vf::record __unknown__ [list $name]
    error "command \"$name\" is not a known $::__vf::tool_label command"
}

# Hide every other global command (exec, open, source, glob, ...) from the script.
rename ::rename ::__vf::rename
foreach ::__vf::cmd [info commands ::*] {
    set ::__vf::short [namespace tail $::__vf::cmd]
    if {$::__vf::short ni $::__vf::keep && [info commands ::__vf::$::__vf::short] eq ""} {
        ::__vf::rename ::$::__vf::short ::__vf::$::__vf::short
    }
}

# Run the script: first a syntax check for a message with a line number, then the script.
set ::__vf::fh [::__vf::open $::__vf::script r]
set ::__vf::text [::__vf::read $::__vf::fh]
::__vf::close $::__vf::fh
if {![info complete $::__vf::text]} {
    # Find the command that never completes, for a message with a line number.
    set ::__vf::buffer ""
    set ::__vf::start 0
    set ::__vf::line 0
    foreach ::__vf::l [split $::__vf::text "\n"] {
        incr ::__vf::line
        if {$::__vf::buffer eq ""} {
            set ::__vf::start $::__vf::line
        }
        append ::__vf::buffer $::__vf::l "\n"
        if {[info complete $::__vf::buffer]} {
            set ::__vf::buffer ""
        }
    }
    ::__vf::record __result__ [list 1 [join [list "syntax error: the command at line" \
        $::__vf::start "is not complete TCL (an unclosed brace, bracket or quote)"]] ""]
    ::__vf::exit 0
}
set ::__vf::rc [catch {uplevel #0 [list ::__vf::source $::__vf::script]} ::__vf::msg ::__vf::opts]
set ::__vf::trace ""
if {$::__vf::rc} {
    set ::__vf::trace [dict get $::__vf::opts -errorinfo]
}
::__vf::record __result__ [list $::__vf::rc $::__vf::msg $::__vf::trace]
::__vf::exit 0
