"""Identifiers from models, made safe for C++, Verilog and TCL (one filter per language).

A layer name such as `blocks.0/attn "qkv"; $finish` must never reach generated code as written:
every name becomes `[A-Za-z_][A-Za-z0-9_]*`, avoids each language's keywords, and is unique.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

__all__ = ["identifier", "unique_identifiers"]

_CPP_KEYWORDS = {
    "alignas", "alignof", "and", "asm", "auto", "bool", "break", "case", "catch", "char",
    "class", "const", "constexpr", "continue", "default", "delete", "do", "double", "else",
    "enum", "explicit", "export", "extern", "false", "float", "for", "friend", "goto", "if",
    "inline", "int", "long", "mutable", "namespace", "new", "noexcept", "not", "nullptr",
    "operator", "or", "private", "protected", "public", "register", "return", "short", "signed",
    "sizeof", "static", "struct", "switch", "template", "this", "throw", "true", "try",
    "typedef", "typename", "union", "unsigned", "using", "virtual", "void", "volatile", "while",
}
_VERILOG_KEYWORDS = {
    "always", "assign", "begin", "case", "default", "else", "end", "endcase", "endfunction",
    "endmodule", "for", "function", "genvar", "if", "initial", "inout", "input", "integer",
    "localparam", "module", "negedge", "output", "parameter", "posedge", "reg", "signed",
    "wire", "logic", "bit", "byte", "int", "time", "real", "generate", "endgenerate", "task",
    "endtask", "fork", "join", "wait", "force", "release", "table", "specify", "event",
}
_TCL_WORDS = {"set", "proc", "puts", "exit", "source", "exec", "eval", "expr", "if", "for"}
RESERVED = _CPP_KEYWORDS | _VERILOG_KEYWORDS | _TCL_WORDS


def identifier(name: str, max_len: int = 48) -> str:
    """A name safe as an identifier in C++, Verilog-2005 and TCL alike."""
    ident = re.sub(r"[^A-Za-z0-9_]+", "_", name).strip("_")
    ident = re.sub(r"_+", "_", ident)[:max_len].rstrip("_")
    if not ident or ident[0].isdigit():
        ident = "l_" + ident
    if ident.lower() in RESERVED or ident.startswith(("ap_", "s_axi", "m_axi")):
        ident = "l_" + ident
    return ident


def unique_identifiers(names: Iterable[str]) -> dict[str, str]:
    """Map each name to a distinct identifier, suffixing `_2`, `_3`... where sanitising collides."""
    taken: set[str] = set()
    out: dict[str, str] = {}
    for name in names:
        base = identifier(name)
        ident, i = base, 2
        while ident in taken:
            ident, i = f"{base}_{i}", i + 1
        taken.add(ident)
        out[name] = ident
    return out
