"""The `vitfpga` command. Every user error is one line on stderr and exit code 2; a verification
mismatch is exit code 1; never a traceback for either."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click
from rich.console import Console
from rich.table import Table

from vitfpga.errors import VitfpgaError

__all__ = ["main"]


def _console() -> Console:
    console = Console()
    # Pipes and CI logs get 80 columns by default: too narrow for part numbers and step lines.
    return console if console.is_terminal else Console(width=120)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="vitfpga")
def cli() -> None:
    """Compress a ViT until every weight fits on chip; generate and verify its FPGA engine."""


@cli.command()
@click.option("--config", "config_path", type=click.Path(path_type=Path), default=None,
              help="TOML file with run settings (keys as in vitfpga.config.RunConfig).")
@click.option("--board", default=None, help="Target board (see `vitfpga boards`).")
@click.option("--out", type=click.Path(path_type=Path), default=Path("runs/latest"),
              show_default=True, help="Output directory, written atomically.")
@click.option("--force", is_flag=True, help="Replace --out if it exists and is not empty.")
@click.option("--quick", is_flag=True, help="Same path with few epochs (tests, first look).")
def run(config_path: Path | None, board: str | None, out: Path, force: bool,
        quick: bool) -> None:
    """Train, quantise, export, plan, generate and verify, end to end."""
    from vitfpga.config import load_config
    from vitfpga.outdir import check_output_dir

    # Bad input fails here, in a second, before the heavy imports and the training.
    cfg = load_config(config_path, board=board)
    check_output_dir(out, force)
    from vitfpga.pipeline import run_pipeline

    run_pipeline(cfg.quick() if quick else cfg, out, force, _console())


@cli.command()
def boards() -> None:
    """List the known boards and their resources."""
    from vitfpga.hls.boards import BOARDS

    table = Table(title="Boards (vendor data sheets)")
    for col in ("board", "part", "LUT", "FF", "BRAM36", "URAM", "DSP", "clock MHz"):
        table.add_column(col, justify="left" if col in ("board", "part") else "right")
    for b in BOARDS.values():
        table.add_row(b.name, b.part, f"{b.lut:,}", f"{b.ff:,}", str(b.bram36), str(b.uram),
                      f"{b.dsp:,}", f"{b.clock_mhz:g}")
    _console().print(table)


def main(argv: list[str] | None = None) -> int:
    def err(message: str) -> None:
        click.echo(f"vitfpga: {message}", err=True)  # one line, however narrow the terminal

    try:
        cli.main(args=argv, prog_name="vitfpga", standalone_mode=False)
    except click.exceptions.Abort:
        err("interrupted; no output directory was written")
        return 130
    except click.ClickException as e:
        err(e.format_message())
        return 2
    except VitfpgaError as e:
        err(str(e))
        return e.exit_code
    except KeyboardInterrupt:
        err("interrupted; no output directory was written")
        return 130
    except Exception as e:  # a bug, not bad input: one line, the traceback on request
        if os.environ.get("VITFPGA_DEBUG"):
            raise
        err(f"internal error: {type(e).__name__}: {e} (set VITFPGA_DEBUG=1 for the traceback)")
        return 3
    return 0


if __name__ == "__main__":
    sys.exit(main())
