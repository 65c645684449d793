"""Replaying recordings: each one becomes a model ``replay:<file stem>`` of a local server.

``LocalServer(replay=...)`` (and ``python -m lesson_helpers serve --replay PATH``) calls
:func:`install`: every recording (:mod:`lesson_helpers.recording`) is registered on that
server only, listed by ``GET /v1/models`` with the description from its header. A request
for it, on the API the recording was made with, gets the recorded status, headers and body
byte for byte, cut into the recorded pieces and paced by the recorded times: the status line
and headers when they arrived, each piece at its time, then the end as recorded (the body
finished properly, or the connection cut). ``speed`` divides every time (2 = twice as fast);
0 sends everything at once. The request's own content (question, ``stream``, parameters) does
not change what is replayed.

The body is framed as it was received (chunked: one HTTP chunk per piece; a
``Content-Length``; or ended by closing the connection), except that an error status is
always sent with a ``Content-Length`` (the whole body is known in advance); a body with a
length that broke off announces one byte more than it has, so it ends too early again. The
server adds
its own ``Date``, ``Server`` and ``X-Request-Id`` headers (and ``Cache-Control`` on a 200
stream), as it does for every response. A request for a recording on another API is refused
in that API's error shape.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..recording import APIS, Recording, RecordingError, resolve
from .exchange import Exchange
from .models import ModelSpec
from .routes import ROUTES, Request, Route, RouteHandler

if TYPE_CHECKING:
    from .server import LocalServer

__all__ = ["ReplayModel", "ReplaySource", "check_speed", "install", "play"]

ReplaySource = str | os.PathLike[str] | Recording | Iterable[str | os.PathLike[str] | Recording]
"""What to replay: files, folders, names of the kit's recordings, Recording objects."""
MAX_SPEED = 1000.0
_ROUTE_OF = {api: "/v1" + path for api, path in APIS.items()}  # the local server's paths
_API_OF = {path: api for api, path in _ROUTE_OF.items()}


@dataclass(frozen=True)
class ReplayModel(ModelSpec):
    """A model that replays one recording (on the chat route through ``handler``)."""

    recording: Recording | None = None
    speed: float = 1.0


def check_speed(speed: float) -> float:
    """``speed`` as a float, or ValueError when it is not a number from 0 to 1000."""
    number = isinstance(speed, int | float) and not isinstance(speed, bool)
    if not number or not math.isfinite(speed) or not 0 <= speed <= MAX_SPEED:
        raise ValueError(f"replay_speed must be a number from 0 to {MAX_SPEED:g}, not {speed!r}")
    return float(speed)


def _content_type_and_rest(recording: Recording) -> tuple[str, dict[str, str]]:
    content_type = recording.header("Content-Type", "application/octet-stream")
    rest = {k: v for k, v in recording.headers.items() if k.lower() != "content-type"}
    return content_type, rest


def play(recording: Recording, ex: Exchange, speed: float = 1.0) -> None:
    """Send ``recording`` as this exchange's response, at ``speed`` (0: no waiting)."""
    elapsed = 0.0

    def wait_until(t: float) -> bool:
        nonlocal elapsed
        if not speed:
            return True
        target = t / speed
        if target > elapsed:
            if not ex.sleep(target - elapsed):
                return False
            elapsed = target
        return True

    if not wait_until(recording.head_at):
        ex.cut()
        return
    content_type, headers = _content_type_and_rest(recording)
    pieces = recording.pieces
    if recording.status != 200 or recording.transfer == "length":
        # A body that broke off promises one byte more than it has, so that the client sees
        # it end too early, as the recorder did.
        total = len(recording.body) + (recording.outcome != "complete")
        head = {**headers, "Content-Length": str(total)}
        ex.send_bytes(recording.status, b"", content_type, head)
    else:
        chunked = recording.transfer == "chunked"
        ex.start_stream(chunked=chunked, content_type=content_type, headers=headers)
    for piece in pieces:
        if not wait_until(piece.t):
            ex.cut()
            return
        ex.write(piece.data)
    if not wait_until(recording.end):
        ex.cut()
        return
    if recording.outcome != "complete":
        ex.cut()
    elif recording.status == 200 and recording.transfer != "length":
        ex.end_stream()


def _spec(recording: Recording, speed: float) -> ReplayModel:
    def handle(ex: Exchange) -> None:  # reached through the chat route's model table
        if recording.api == "chat":
            play(recording, ex, speed)
        else:
            ex.send_error(400, _wrong_api(recording, "chat"), "model_not_supported", param="model")

    kind = f"{recording.status} " if recording.status != 200 else ""
    description = (
        f"录音回放（{recording.api}，{kind}{_source(recording)}）：{recording.description}"
    )
    owner = recording.provider or "recording"
    return ReplayModel(recording.model_id, description, handle, owner, recording, speed)


def _source(recording: Recording) -> str:
    return "按文档重建" if recording.source == "reconstructed" else "真实录制"


def _wrong_api(recording: Recording, api: str) -> str:
    return (
        f"The recording `{recording.model_id}` was made with POST {_ROUTE_OF[recording.api]}, "
        f"not POST {_ROUTE_OF[api]}: send the request there."
    )


def _replaying(path: str, original: Route) -> RouteHandler:
    """The route's handler, except that a replay model of this server is replayed."""
    api = _API_OF[path]

    def handle(request: Request, ex: Exchange) -> None:
        body = request.body
        model = body.get("model") if isinstance(body, dict) else None
        spec = request.models.get(model) if isinstance(model, str) else None
        if not isinstance(spec, ReplayModel) or spec.recording is None:
            original.handler(request, ex)
        elif spec.recording.api != api:
            original.errors(
                ex, 400, _wrong_api(spec.recording, api), "model_not_supported", "model"
            )
        else:
            play(spec.recording, ex, spec.speed)

    handle.replays = True  # type: ignore[attr-defined]
    return handle


def install(
    server: LocalServer,
    sources: ReplaySource,
    speed: float = 1.0,
) -> list[ReplayModel]:
    """Offer each recording of ``sources`` (see :func:`lesson_helpers.recording.resolve`) on
    ``server`` as ``replay:<name>``; the models, in order. A malformed recording raises
    :class:`~lesson_helpers.recording.RecordingError` (one line naming the file and line)."""
    speed = check_speed(speed)
    recordings = resolve(sources)
    if not recordings:
        raise RecordingError("没有给出要回放的录音。")
    for path in _ROUTE_OF.values():
        current = server.routes.get(("POST", path)) or ROUTES.get(("POST", path))
        if current is None or getattr(current.handler, "replays", False):
            continue
        server.add_route("POST", path, _replaying(path, current), errors=current.errors)
    models = [_spec(recording, speed) for recording in recordings]
    for model in models:
        server.register(model)
    return models
