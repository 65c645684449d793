"""A stream of chunks → a live view that grows as the deltas arrive.

>>> view = LiveView()                                        # doctest: +SKIP
>>> view.run(lambda: client.stream([{"role": "user", "content": "你好"}]))
>>> view.text
'你好！有什么问题或者需要帮助的吗？'

In Jupyter the view is a small ipywidgets panel: a status line (model, state, time to first
token, tokens/s, usage), a Stop button, a collapsible panel for the reasoning (sent as
``reasoning_content``, ``reasoning`` or thinking parts), the answer (Markdown), a refusal and
the tool calls as their arguments stream in. Elsewhere (a terminal, a script) it prints the
text as it arrives.

Two ways to run it:

* ``view.run(source)`` blocks until the stream ends. The updates are still visible while the
  cell runs: every widget change is a message the kernel sends on its IOPub channel at once.
  The kernel handles one request at a time, though, so a click on Stop would only be read
  after the cell ends -- in this mode the button is disabled; interrupt the kernel (■) to stop.
* ``view.start(source)`` reads the stream in a background thread and returns at once, so the
  notebook stays usable and Stop works. ``view.wait()`` (or ``join()``) waits for the end.

``source`` is any iterable of ``chat.completion.chunk`` dicts (a ``ChatStream``, a list, a
generator; plain strings count as answer text), or a function returning one -- then the
request itself is made inside the view, timed, and its errors are shown in the view too.
A ``ChatStream`` merges each chunk once, into its own assembler, and the view reads that
(nothing is merged twice); for anything else the view keeps one assembler of its own.

Renders are throttled (``max_fps``, 25 per second by default) however fast the deltas come,
and the last render always shows the exact final text. An exception from the stream ends it:
the view shows the exception's one-line message and keeps the partial text (``view.error``);
nothing is raised. The key never shows: not in the answer, the status line or the error,
even when a server sends it back.

The parts, one job each:

* :mod:`.throttle` -- *when* to render: the rule lesson 04 teaches, no I/O;
* :mod:`.state` -- *what* the answer is so far and how fast it came (reads the assembler);
* :mod:`.secrecy` -- keeping the key out of what is shown;
* :mod:`.widget`, :mod:`.text` -- *how* it is drawn;
* :mod:`.view` -- the driver: reading the stream here or in a thread, Stop;
* :mod:`.side_by_side` -- several views in one row.
"""

from .side_by_side import show_side_by_side
from .state import ANSWERING, CALLING, DONE, ERROR, STOPPED, THINKING, WAITING, StreamState
from .throttle import Throttle, throttle_renders
from .view import MODES, LiveView
from .widget import detect_mode

__all__ = [
    "ANSWERING",
    "CALLING",
    "DONE",
    "ERROR",
    "MODES",
    "STOPPED",
    "THINKING",
    "WAITING",
    "LiveView",
    "StreamState",
    "Throttle",
    "detect_mode",
    "show_side_by_side",
    "throttle_renders",
]
