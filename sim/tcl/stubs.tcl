# The stub environment vitfpga.sim.tclsh runs a generated Vivado or Vitis HLS script in.
#
# Usage: tclsh stubs.tcl LOG SCRIPT BOARD_FILES FILES_EXIST RUNS_COMPLETE TOOL_LABEL \
#            VALUE_OPTIONS SLAVE_SEGMENTS STUBS KEEP
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
#
# Every list argument is made of plain words (letters, digits, `_`, `-`).

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
    set out {}
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
        get_board_parts {
            if {$board_files} { return [lindex $pos 0] }
            return ""
        }
        get_ipdefs {
            set out {}
            foreach p $pos {
                lappend out [string map {* 99.9} $p]
            }
            return $out
        }
        create_bd_cell - create_bd_design { return "/[lindex $pos end]" }
        get_bd_addr_segs {
            set of [optval $arglist -of_objects]
            if {$of ne ""} { return [segments $of] }
            return $pos
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
