"""stages._common.quick_exit: a finished stage skips module teardown but still runs its atexit
handlers and flushes stdout / stderr; with another live thread it leaves the exit to Python."""

import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).parents[1]


def _run(body: str, tmp_path: Path) -> subprocess.CompletedProcess:
    code = textwrap.dedent(f"""
        import atexit, sys, threading, time
        from pathlib import Path
        from stages._common import quick_exit
        atexit.register(lambda: Path({str(tmp_path / 'atexit')!r}).write_text('ran'))
        sys.stdout.write('buffered, no newline')
        sys.stderr.write('err text')
        {body}
        quick_exit()
        print('after quick_exit')
        """)
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                          text=True, timeout=120)


def test_quick_exit_flushes_and_runs_atexit_handlers(tmp_path):
    r = _run("", tmp_path)
    assert r.returncode == 0, r.stderr
    assert r.stdout == "buffered, no newline"  # nothing after quick_exit ran
    assert r.stderr == "err text"
    assert (tmp_path / "atexit").read_text() == "ran"


def test_quick_exit_leaves_a_live_thread_to_the_normal_exit(tmp_path):
    r = _run("t = threading.Thread(target=time.sleep, args=(0.5,)); t.start()", tmp_path)
    assert r.returncode == 0, r.stderr
    assert r.stdout.endswith("after quick_exit\n")  # returned; Python joined the thread
    assert (tmp_path / "atexit").read_text() == "ran"
