"""The progress bar of a batch (rich, on stderr): done / failed / remaining and elapsed time."""
from __future__ import annotations

from typing import Any

from evalkit.text import text

__all__ = ["ProgressBar"]


class ProgressBar:
    """Counts finished runs; draws a bar on stderr when ``show`` is true.

    Parameters
    ----------
    total : int
        Runs of the batch.
    reused : int
        Runs already done (reused by ``--resume``).
    show : bool
        Draw the bar (else only count).
    title : str
        Text before the bar (the notebook's name).
    lang : str
        Language of the bar's words.
    """

    def __init__(self, total: int, reused: int, show: bool, title: str, lang: str = "en") -> None:
        self.total, self.ok, self.failed, self.reused = total, reused, 0, reused
        self.show, self.title, self.lang = show, title, lang
        self._p: Any = None
        self._task: Any = None

    def _fields(self) -> dict[str, Any]:
        return {"ok": self.ok, "failed": self.failed, "remaining": self.total - self.ok - self.failed}

    def __enter__(self) -> ProgressBar:
        if self.show:
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

            counts = text("runner_progress", self.lang, ok="{task.fields[ok]}", failed="{task.fields[failed]}",
                          remaining="{task.fields[remaining]}")
            self._p = Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                               TextColumn(counts), TimeElapsedColumn(), console=Console(stderr=True))
            self._p.start()
            self._task = self._p.add_task(self.title, total=self.total, completed=self.reused, **self._fields())
        return self

    def update(self, status: str) -> None:
        """Count one finished run (``status`` 'ok' or 'failed')."""
        if status == "ok":
            self.ok += 1
        else:
            self.failed += 1
        if self._p is not None:
            self._p.update(self._task, advance=1, **self._fields())

    def __exit__(self, *exc: Any) -> None:
        if self._p is not None:
            self._p.stop()
