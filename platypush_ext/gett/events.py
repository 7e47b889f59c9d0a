"""Events of the ``gett`` plugin: the progress and the outcome of file transfers."""

from __future__ import annotations

from ..events import BundleEvent, ServiceAuthFailedEvent


class GettTransferEvent(BundleEvent):
    """Base class of the transfer events (hook on a subclass)."""

    def __init__(
        self,
        *args,
        transfer_id: str,
        direction: str,
        filename: str | None = None,
        sharename: str | None = None,
        fileid: str | None = None,
        path: str | None = None,
        **kwargs,
    ):
        """
        :param transfer_id: the transfer's id (returned by the action that started it).
        :param direction: ``upload`` or ``download``.
        :param filename: the file's name on Ge.tt.
        :param sharename: the share (for a new upload: known once it is created).
        :param fileid: the file's id (for an upload: known once it is created).
        :param path: the local file read or written (``None`` for uploads of inline data).
        """
        super().__init__(
            *args,
            transfer_id=transfer_id,
            direction=direction,
            filename=filename,
            sharename=sharename,
            fileid=fileid,
            path=path,
            **kwargs,
        )


class GettTransferProgressEvent(GettTransferEvent):
    """A transfer made progress (posted at most every ``progress_interval`` seconds)."""

    def __init__(self, *args, bytes_done: int, bytes_total: int | None = None, **kwargs):
        """
        :param bytes_done: bytes transferred so far.
        :param bytes_total: bytes to transfer in all (``None`` if unknown).
        """
        super().__init__(*args, bytes_done=bytes_done, bytes_total=bytes_total, **kwargs)


class GettTransferCompletedEvent(GettTransferEvent):
    """A transfer completed: the upload is ``uploaded`` on Ge.tt, or the download is complete at ``path``."""

    def __init__(self, *args, size: int, duration: float, getturl: str | None = None, **kwargs):
        """
        :param size: bytes transferred.
        :param duration: seconds the transfer took.
        :param getturl: the file's public page on Ge.tt.
        """
        super().__init__(*args, size=size, duration=duration, getturl=getturl, **kwargs)


class GettTransferFailedEvent(GettTransferEvent):
    """A transfer failed or was cancelled. A failed upload removes what it created on Ge.tt; a failed
    download leaves nothing at the destination path."""

    def __init__(self, *args, error: str, cancelled: bool = False, bytes_done: int = 0, **kwargs):
        """
        :param error: what went wrong.
        :param cancelled: whether it was cancelled (``gett.cancel_transfer`` or Platypush stopping).
        :param bytes_done: bytes transferred before it stopped.
        """
        super().__init__(*args, error=error, cancelled=cancelled, bytes_done=bytes_done, **kwargs)


class GettAuthFailedEvent(ServiceAuthFailedEvent):
    """Ge.tt refused the login (403: the API key, e-mail or password, or the refresh token, is no
    longer accepted); posted once, when the refusals start. ``gett.status`` shows
    ``credentials_rejected`` until a login succeeds again."""
