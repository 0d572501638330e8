"""Domain errors. Each carries the CTS wire error code and HTTP status; ``api.errors`` renders them.

OpenCTSError                  (500, CTS.9999)  never raised for bad input
├── BadRequest                (400, CTS.0001)  a parameter or field is wrong
│   └── MalformedJSON         (400, CTS.0002)  the body is not JSON, or not the expected shape
├── Unauthorized              (401, CTS.0401)  no or bad credentials
├── Forbidden                 (403, CTS.0403)  credentials fine, permission missing
├── NotFound                  (404, CTS.0404)
├── MethodNotAllowed          (405, CTS.0405)
├── Conflict                  (409, CTS.0409)  e.g. a tracker that exists already
├── RequestTimeout            (408, CTS.0408)  the work took longer than its deadline (an archive query)
├── PayloadTooLarge           (413, CTS.0413)
├── UnsupportedMediaType      (415, CTS.0415)
├── QuotaExceeded             (400, CTS.0412)  a CTS limit (trackers, notifications) is reached
└── Overloaded                (429, CTS.0429)  try again after ``retry_after`` seconds
    └── TooManyAttempts       (429, CTS.0430)  logins refused a while after too many wrong passwords
"""

from __future__ import annotations


class OpenCTSError(Exception):
    status: int = 500
    code: str = "CTS.9999"

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.code!r}, {self.message!r})"


class BadRequest(OpenCTSError):
    status = 400
    code = "CTS.0001"


class MalformedJSON(BadRequest):
    code = "CTS.0002"


class Unauthorized(OpenCTSError):
    status = 401
    code = "CTS.0401"


class Forbidden(OpenCTSError):
    status = 403
    code = "CTS.0403"


class NotFound(OpenCTSError):
    status = 404
    code = "CTS.0404"


class MethodNotAllowed(OpenCTSError):
    status = 405
    code = "CTS.0405"


class Conflict(OpenCTSError):
    status = 409
    code = "CTS.0409"


class RequestTimeout(OpenCTSError):
    """The request was understood but its work ran past its deadline and was stopped: asking again with a
    narrower range may succeed, so it is the caller's 4xx and not the server's 5xx."""

    status = 408
    code = "CTS.0408"


class PayloadTooLarge(OpenCTSError):
    status = 413
    code = "CTS.0413"


class UnsupportedMediaType(OpenCTSError):
    status = 415
    code = "CTS.0415"


class QuotaExceeded(OpenCTSError):
    status = 400
    code = "CTS.0412"


class Overloaded(OpenCTSError):
    status = 429
    code = "CTS.0429"

    def __init__(self, message: str, *, retry_after: int = 1) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class TooManyAttempts(Overloaded):
    """Not the server's load but the caller's guesses (``iam.lockout``): the same 429 and Retry-After."""

    code = "CTS.0430"
