"""Constrained types shared by the API schemas."""

from typing import Annotated

from pydantic import Field

INT32_MAX = 2**31 - 1

# Positions are stored in PostgreSQL `integer` columns: bound them so a huge number is a 422, not a 500.
SortPosition = Annotated[int, Field(ge=-INT32_MAX, le=INT32_MAX)]
