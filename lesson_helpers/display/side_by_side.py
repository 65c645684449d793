"""Several live views next to each other: one row of widgets, or whole blocks of text."""

from __future__ import annotations

import threading
from typing import Any

from .view import LiveView
from .widget import in_ipython

__all__ = ["show_side_by_side"]


def show_side_by_side(*views: LiveView) -> None:
    """Show several views next to each other (start them afterwards, e.g. with ``start``).

    Without widgets each view prints its whole answer, under its title, once it ended --
    two streams printed into one terminal at the same time would be unreadable.
    """
    if not (views and all(view.widget is not None for view in views)):
        for view in views:
            if view.widget is None:
                view.take_place()  # text mode: print the whole answer at the end
        return
    import ipywidgets as w

    widgets = [view.take_place() for view in views]
    share = f"{100 / len(views):.4f}%"
    for widget in widgets:
        widget.layout.width = share
        widget.layout.padding = "4px 8px"
    box = w.HBox(widgets, layout=w.Layout(width="100%", align_items="flex-start"))
    if in_ipython():
        _display_box(box, list(views))


def _display_box(box: Any, views: list[LiveView]) -> None:
    from IPython.display import display

    def plain() -> str:
        if not all(v.done for v in views):
            return "（并排的实时视图：正在接收……）"
        return "\n\n".join(f"【{v.title or v.model}】\n{v.plain_text()}" for v in views)

    bundle = dict(box._repr_mimebundle_())
    bundle["text/plain"] = plain()
    handle = display(bundle, raw=True, display_id=True)
    lock = threading.Lock()

    def maybe_update(_view: LiveView) -> None:
        with lock:
            if all(v.done for v in views):
                handle.update({**bundle, "text/plain": plain()}, raw=True)

    for view in views:
        view.add_finish_callback(maybe_update)
