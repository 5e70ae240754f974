"""The database session the bot and the command line use: SQLAlchemy's ``AsyncSession``
with ``exec``, which returns what a statement selects in the shape it was asked for.

``select(Group)`` or ``select(Group.id)`` gives the rows' one value each
(``ScalarResult``); ``select(Group.id, Group.codename)`` gives tuples; an INSERT,
UPDATE or DELETE gives the cursor's result. Plain ``execute`` always gives ``Row``
objects, so that ``select(Group)`` would need ``.scalars()`` at every call."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, TypeVar, TypeVarTuple, overload

from sqlalchemy import Select
from sqlalchemy.engine import CursorResult, ScalarResult, TupleResult
from sqlalchemy.ext.asyncio import AsyncSession as _SQLAlchemyAsyncSession
from sqlalchemy.sql import Executable
from sqlalchemy.sql.dml import UpdateBase

_T = TypeVar("_T")
_T0 = TypeVar("_T0")
_T1 = TypeVar("_T1")
_Ts = TypeVarTuple("_Ts")

Params = Mapping[str, Any] | Sequence[Mapping[str, Any]] | None


class AsyncSession(_SQLAlchemyAsyncSession):
    @overload
    async def exec(self, statement: Select[_T], params: Params = None) -> ScalarResult[_T]: ...

    @overload
    async def exec(
        self, statement: Select[_T0, _T1, *_Ts], params: Params = None
    ) -> TupleResult[tuple[_T0, _T1, *_Ts]]: ...

    @overload
    async def exec(
        self, statement: UpdateBase, params: Params = None
    ) -> CursorResult[*tuple[Any, ...]]: ...

    async def exec(self, statement: Executable, params: Params = None) -> Any:
        result = await self.execute(statement, params)
        if isinstance(statement, Select) and len(statement.column_descriptions) == 1:
            return result.scalars()
        return result
