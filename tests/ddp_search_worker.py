"""Run `gdas ARGS...` as one torchrun rank while recording every architecture the sampler draws.

The recording wraps the real `gdas_cli.sampler.draw` (it still samples); each rank writes its
indices to $GDAS_DRAWS_DIR/rank<R>.json so a test can compare the ranks.
"""

import json
import os
import sys
from pathlib import Path

import gdas_cli.sampler as sampler

drawn: list = []
_draw = sampler.draw


def recording_draw(*args, **kwargs):
    result = _draw(*args, **kwargs)
    drawn.append(result.index.tolist())
    return result


sampler.draw = recording_draw

if __name__ == "__main__":
    from gdas_cli.cli import app

    code = 0
    try:
        app(sys.argv[1:])
    except SystemExit as stop:
        code = stop.code if isinstance(stop.code, int) else (0 if stop.code is None else 1)
    finally:
        out = Path(os.environ["GDAS_DRAWS_DIR"]) / f"rank{os.environ.get('RANK', '0')}.json"
        out.write_text(json.dumps(drawn))
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)  # as gdas_cli.cli.main ends a torchrun worker: no C++ destructors at exit
