"""Client: download an overlay and touch nothing else.

    download.py BITFILE
"""

import json
import sys

from pynq import Overlay


def main() -> None:
    ol = Overlay(sys.argv[1])
    print(json.dumps({"ok": ol.is_loaded(), "ip": sorted(ol.ip_dict)}))


if __name__ == "__main__":
    main()
