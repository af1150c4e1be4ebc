"""Where scripts/tools.sh puts the third-party programs it builds (Debian's are on PATH)."""

from conftest import ROOT

GOREPLAY = ROOT / ".cache" / "tools" / "bin" / "goreplay"
