"""The built-in ``transform`` handler: shapes data with a JMESPath expression.

JMESPath is a query language, not a program: an expression selects, filters, projects and builds
JSON with a fixed set of functions, so a definition can reshape data without running code.
"""

from __future__ import annotations

from typing import Any

import jmespath
from jmespath.exceptions import JMESPathError

from services.worker.registry import HandlerContext, NonRetryableError


class TransformError(NonRetryableError):
    """The expression is not valid JMESPath, or cannot be applied to the data."""


def transform_handler(ctx: HandlerContext) -> Any:
    """``config.expression`` applied to ``config.data`` (default: the node's inputs, by node id);
    the output is what the expression gives (``null`` when nothing matches)."""
    expression = ctx.config.get("expression")
    if not isinstance(expression, str) or not expression.strip():
        raise TransformError(
            f"config.expression must be a JMESPath expression (a string), not {expression!r}"
        )
    data = ctx.config["data"] if "data" in ctx.config else dict(ctx.inputs)
    try:
        return jmespath.compile(expression).search(data)
    except JMESPathError as error:
        detail = " ".join(str(error).split())
        raise TransformError(f"transform expression {expression!r} failed: {detail}") from None
