"""The gateway's admin API: developer keys."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Response, status
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from common.errors import NotFound
from gateway.auth import RuntimeDep, require_admin
from gateway.keys import hash_key, new_key, now
from gateway.models import ApiKey
from gateway.schemas import KeyCreate, KeyCreated, KeyPublic, KeysPublic, KeyUpdate

__all__ = ["router"]

#: A row id in a path: bounded, so no number too large for the database gets through.
RowId = Annotated[int, Path(ge=1, le=2**62)]

router = APIRouter(prefix="/admin", tags=["admin"], dependencies=[Depends(require_admin)])


async def _session(runtime: RuntimeDep) -> AsyncIterator[AsyncSession]:
    async with runtime.db.write_session() as session:
        yield session


SessionDep = Annotated[AsyncSession, Depends(_session)]


def _public(key: ApiKey) -> KeyPublic:
    return KeyPublic(
        id=key.id,
        name=key.name,
        prefix=key.prefix,
        rate_limit_per_minute=key.rate_limit_per_minute,
        daily_quota=key.daily_quota,
        created_at=key.created_at,
        revoked=key.revoked_at is not None,
    )


async def _get(session: AsyncSession, key_id: int) -> ApiKey:
    key = await session.get(ApiKey, key_id)
    if key is None:
        raise NotFound(f"no key {key_id}")
    return key


@router.get("/keys", response_model=KeysPublic)
async def list_keys(session: SessionDep) -> KeysPublic:
    keys = (await session.scalars(select(ApiKey).order_by(ApiKey.id))).all()
    return KeysPublic(items=[_public(k) for k in keys], count=len(keys))


@router.post("/keys", response_model=KeyCreated, status_code=status.HTTP_201_CREATED)
async def create_key(data: KeyCreate, session: SessionDep, runtime: RuntimeDep) -> KeyCreated:
    """Create a key; the answer is the only place the key is ever shown."""
    value = new_key()
    key = ApiKey(
        name=data.name,
        key_hash=hash_key(value),
        prefix=value[:12],
        rate_limit_per_minute=data.rate_limit_per_minute
        or runtime.settings.default_rate_limit_per_minute,
        daily_quota=data.daily_quota or runtime.settings.default_daily_quota,
    )
    session.add(key)
    await session.commit()
    return KeyCreated(**_public(key).model_dump(), key=value)


@router.patch("/keys/{key_id}", response_model=KeyPublic)
async def update_key(key_id: RowId, data: KeyUpdate, session: SessionDep) -> KeyPublic:
    key = await _get(session, key_id)
    for name, value in data.model_dump(exclude_none=True).items():
        setattr(key, name, value)
    await session.commit()
    return _public(key)


@router.delete("/keys/{key_id}", status_code=status.HTTP_204_NO_CONTENT)
async def revoke_key(key_id: RowId, session: SessionDep) -> Response:
    """Revoke a key: it is refused at once."""
    key = await _get(session, key_id)
    if key.revoked_at is None:
        key.revoked_at = now()
        await session.commit()
    return Response(status_code=status.HTTP_204_NO_CONTENT)
