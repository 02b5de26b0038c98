"""Shared machinery of the recording fakes: model-checked inputs and outputs, a call log, forwarding.

A fake wraps a real (moto) client. Operations moto implements are forwarded untouched; the ones it
lacks are served from state kept here. Inputs go through botocore's own validator against the
service model, so an unknown or mistyped parameter fails exactly as it would before leaving a real
client, and every response is checked against the model's output shape so the fake cannot drift
into shapes the real API never returns.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import botocore.session
from botocore.exceptions import ClientError, ParamValidationError
from botocore.paginate import Paginator
from botocore.validate import ParamValidator

_SESSION = botocore.session.get_session()
_LOCK = threading.Lock()


def _snake_to_pascal(name: str) -> str:
    return "".join(part.capitalize() for part in name.split("_"))


@dataclass(frozen=True)
class Call:
    operation: str  # the boto3 method name, e.g. "list_coverage"
    params: dict[str, Any] = field(default_factory=dict)


class RecordingFake:
    """Forward to `inner` except for the operations in `FAKED` (boto3 method names)."""

    SERVICE: str = ""
    FAKED: frozenset[str] = frozenset()

    def __init_subclass__(cls, **kwargs: Any):
        super().__init_subclass__(**kwargs)
        # Expose each @faked `_op` implementation under its boto3 name `op`.
        for attr in list(vars(cls).values()):
            public = getattr(attr, "_fake_operation", None)
            if public:
                setattr(cls, public, attr)

    def __init__(self, inner: Any):
        self._inner = inner
        with _LOCK:  # botocore's loader cache is not safe to fill from several threads at once
            self._model = _SESSION.get_service_model(self.SERVICE)
            self._paginators = _SESSION.get_paginator_model(self.SERVICE)
        self._validator = ParamValidator()
        self._guard = threading.RLock()
        self.calls: list[Call] = []
        self.exceptions = inner.exceptions
        self.meta = inner.meta

    # --- forwarding ---------------------------------------------------------------------------
    def __getattr__(self, name: str) -> Any:
        # Only reached for attributes not defined on the fake: everything moto implements.
        return getattr(self._inner, name)

    def get_paginator(self, name: str) -> Paginator:
        if name not in self.FAKED:
            return self._inner.get_paginator(name)
        op = _snake_to_pascal(name)
        config = self._paginators.get_paginator(op)
        return Paginator(getattr(self, name), config, self._model.operation_model(op))

    def can_paginate(self, name: str) -> bool:
        return self._inner.can_paginate(name)

    # --- helpers for subclasses ---------------------------------------------------------------
    def _serve(self, method: str, params: dict[str, Any], impl: Callable[..., dict[str, Any]]) -> dict[str, Any]:
        """Validate `params` like botocore, record the call, run `impl`, check the response shape."""
        op = self._model.operation_model(_snake_to_pascal(method))
        if op.input_shape is not None:
            report = self._validator.validate(params, op.input_shape)
            if report.has_errors():
                raise ParamValidationError(report=report.generate_report())
        with self._guard:
            self.calls.append(Call(method, dict(params)))
            response = dict(impl(**params))
        response.pop("ResponseMetadata", None)  # a forwarded moto response carries one; the model does not
        if op.output_shape is not None:
            report = self._validator.validate(response, op.output_shape)
            if report.has_errors():  # a bug in the fake, never in the code under test
                raise AssertionError(
                    f"fake {self.SERVICE}.{method} returned a shape the model rejects: " + report.generate_report()
                )
        response["ResponseMetadata"] = {"HTTPStatusCode": 200, "RequestId": "fake"}
        return response

    def _error(self, method: str, code: str, message: str, status: int = 400) -> ClientError:
        op = _snake_to_pascal(method)
        body = {"Error": {"Code": code, "Message": message}, "ResponseMetadata": {"HTTPStatusCode": status}}
        return self._inner.exceptions.from_code(code)(body, op)

    def calls_to(self, method: str) -> list[dict[str, Any]]:
        """The parameters of every call to `method`, in order."""
        return [c.params for c in self.calls if c.operation == method]


def faked(method: Callable[..., dict[str, Any]]) -> Callable[..., dict[str, Any]]:
    """Mark a fake's `_name` implementation as the served operation `name` (keyword-only, like boto3)."""
    public = method.__name__.lstrip("_")

    def call(self: RecordingFake, *args: Any, **params: Any) -> dict[str, Any]:
        if args:
            raise TypeError(f"{public}() only accepts keyword arguments.")
        return self._serve(public, params, lambda **p: method(self, **p))

    call.__name__ = public
    call._fake_operation = public  # type: ignore[attr-defined]
    call.__doc__ = method.__doc__
    return call
