"""`Injected[T]`: a parameter that dependency injection provides, handed over as it is.

Litestar finds such a parameter by its name among the app's dependencies, and
would otherwise validate the value against its type as if it came from the
request. These are a service's own objects (its runtime, a unit of work, a
verified principal): nothing to validate, and not on the hot path either.
"""

from __future__ import annotations

from typing import Annotated, TypeAlias, TypeVar

from litestar.di import Dependency
from litestar.params import SkipValidationMarker

T = TypeVar("T")

Injected: TypeAlias = Annotated[T, SkipValidationMarker(), Dependency(kind="named")]
