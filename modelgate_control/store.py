"""Desired routes in one store: one row per model, one global generation, audited in the same transaction.

Every change bumps a single counter row and writes the changed model rows with the new generation
and one audit record per model, all in ONE transaction: the change and its audit record exist
together or not at all. The first statement of a change is the counter UPDATE, so writers queue on
it (SQLite: the database write lock, taken with the busy timeout; PostgreSQL: the row lock) and two
concurrent changes always land with distinct, increasing generations.

A change that leaves a model's document as it is writes nothing and answers that model's current
generation, so repeating a step (a saga retry, a guard cut already written by another replica) is
idempotent.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError, OperationalError, SQLAlchemyError

from modelgate_control import ControlError, StoreUnavailable
from modelgate_control.audit import KEY_FILE, Head, advance_head, append_in, load_key
from modelgate_control.schema import desired_routes, ensure_schema, make_engine, routes_generation

log = logging.getLogger(__name__)

RoutesDoc = dict[str, Any]


def default_key_file() -> Path:
    """The audit key when none is given: ``MODELGATE_SECRETS_DIR`` or ``MODELGATE_HOME/secrets``
    (default ``.local/secrets``), file ``audit-hmac.key`` (the same file ``include.registry`` uses)."""
    folder = os.environ.get("MODELGATE_SECRETS_DIR")
    if not folder:
        folder = str(Path(os.environ.get("MODELGATE_HOME") or ".local") / "secrets")
    return Path(folder) / KEY_FILE


class _Unchanged(Exception):  # control flow inside apply, never escapes
    def __init__(self, generation: int) -> None:
        self.generation = generation


class RouteStore:
    """The desired routes of every model, with one global, strictly increasing generation.

    Args:
        url: SQLAlchemy URL (the audit log's database: SQLite file or PostgreSQL).
        key_file: the audit HMAC key (created 0600 when missing); its folder holds the head anchor.
            Default :func:`default_key_file`.
        timeout_s: busy timeout (SQLite) or connect timeout (PostgreSQL), seconds.
    """

    def __init__(self, url: str, *, key_file: Path | None = None, timeout_s: float = 30.0) -> None:
        self.url = url
        self.key_file = key_file if key_file is not None else default_key_file()
        self.engine = make_engine(url, timeout_s)
        self._prepared = False

    def _prepare(self) -> None:
        if not self._prepared:
            try:
                ensure_schema(self.engine)
            except ControlError as e:
                if isinstance(e.__cause__, OperationalError):
                    raise StoreUnavailable(str(e)) from e
                raise
            self._prepared = True

    def _read(self, stmt: Any) -> list[Any]:
        self._prepare()
        try:
            with self.engine.connect() as conn:
                return list(conn.execute(stmt).all())
        except SQLAlchemyError as e:
            raise StoreUnavailable(f"cannot read the routes store {self._safe_url()}: {e}") from e

    # ------------------------------------------------------------------ reads

    def generation(self) -> int:
        """Return the current global generation (0 before the first change).

        Raises:
            StoreUnavailable: the database cannot be reached.
        """
        rows = self._read(sa.select(routes_generation.c.generation).where(routes_generation.c.id == 1))
        return int(rows[0][0]) if rows else 0

    def snapshot(self) -> tuple[int, dict[str, RoutesDoc]]:
        """Return the generation and every model's routes document, read consistently (one statement).

        Raises:
            StoreUnavailable: the database cannot be reached.
        """
        rows = self._read(sa.select(desired_routes.c.model, desired_routes.c.document, desired_routes.c.generation))
        gen = max((int(r.generation) for r in rows), default=0)
        docs = {str(r.model): json.loads(r.document) for r in rows if r.document is not None}
        return gen, dict(sorted(docs.items()))

    def get(self, model: str) -> tuple[int, RoutesDoc] | None:
        """Return ``(generation of its last change, routes document)`` of one model, or None.

        Raises:
            StoreUnavailable: the database cannot be reached.
        """
        rows = self._read(
            sa.select(desired_routes.c.document, desired_routes.c.generation).where(desired_routes.c.model == model)
        )
        if not rows or rows[0].document is None:
            return None
        return int(rows[0].generation), json.loads(rows[0].document)

    def history(self, model: str) -> dict[str, Any] | None:
        """Return the row of one model: document, generation, actor, reason, run_id, updated_at."""
        rows = self._read(sa.select(desired_routes).where(desired_routes.c.model == model))
        if not rows:
            return None
        r = rows[0]
        return {
            "model": r.model, "document": json.loads(r.document) if r.document else None,
            "generation": int(r.generation), "actor": r.actor, "reason": r.reason, "run_id": r.run_id,
            "updated_at": r.updated_at,
        }

    # ------------------------------------------------------------------ changes

    def put(self, model: str, doc: RoutesDoc, *, actor: str, reason: str, run_id: str | None = None,
            action: str = "routes.put") -> int:
        """Set one model's routes; the row and its audit record commit in one transaction.

        Args:
            model: the model name.
            doc: its routes document (JSON data; validated by the caller).
            actor: who made the change (recorded in the row and the audit log).
            reason: why, in words.
            run_id: the Airflow run id, when a DAG run made the change.
            action: the audit action (``routes.put``, ``guard.cut``...).

        Returns:
            The generation that carries the change (the model's current one when nothing changed).

        Raises:
            StoreUnavailable: the database cannot be reached.
            ControlError: the change could not be written.
        """
        return self.apply({model: doc}, actor=actor, reason=reason, run_id=run_id, action=action)

    def delete(self, model: str, *, actor: str, reason: str, run_id: str | None = None) -> int:
        """Stop serving one model (its row stays as a tombstone so every replica sees the change)."""
        return self.apply({model: None}, actor=actor, reason=reason, run_id=run_id, action="routes.delete")

    def apply(
        self,
        changes: Mapping[str, RoutesDoc | None],
        *,
        actor: str,
        reason: str,
        run_id: str | None = None,
        action: str = "routes.put",
        only_missing: bool = False,
        retries: int = 50,
    ) -> int:
        """Change several models in one transaction under one new generation (None removes a model).

        Args:
            changes: model name to its new document, or None to remove it.
            actor: who made the change.
            reason: why.
            run_id: the Airflow run id, if any.
            action: the audit action of put documents (removals are ``routes.delete``).
            only_missing: write only models the store has never held (seeding from a routes file).
            retries: attempts when another writer of the audit log took the same record number.

        Returns:
            The new generation, or when nothing changed the newest generation of the given models.

        Raises:
            StoreUnavailable: the database cannot be reached.
            ControlError: the change could not be written.
        """
        self._prepare()
        key = load_key(self.key_file, create=True)
        for _ in range(retries):
            try:
                gen, last = self._apply_once(key, changes, actor, reason, run_id, action, only_missing)
            except _Unchanged as u:
                return u.generation
            except IntegrityError as e:
                if "UNIQUE" in str(e) or "duplicate key" in str(e):
                    continue  # another audit writer took this record number: retry on the new head
                raise ControlError(f"cannot write the routes store {self._safe_url()}: {e.orig}") from e
            except OperationalError as e:
                if "locked" in str(e) or "busy" in str(e):
                    time.sleep(0.02)
                    continue
                raise StoreUnavailable(f"cannot write the routes store {self._safe_url()}: {e}") from e
            except SQLAlchemyError as e:
                raise ControlError(f"cannot write the routes store {self._safe_url()}: {e}") from e
            if last is not None:
                try:
                    advance_head(key, self.key_file.parent, self.url, last)
                except (OSError, ControlError) as e:  # committed; the anchor only lags (verify notes it)
                    log.warning("audit head anchor not advanced: %s", e)
            log.info("routes generation %d: %s %s by %s (%s)", gen, action, sorted(changes), actor, reason)
            return gen
        raise ControlError(f"cannot write the routes store: audit head kept moving after {retries} attempts")

    def record(self, actor: str, action: str, subject: str, after: Any = None, run_id: str | None = None,
               retries: int = 50) -> int:
        """Append one audit record that goes with no route change (a refusal the router decided).

        Args:
            actor: who decided (``router-residency@<host>``...).
            action: what kind of decision (``residency.refused``).
            subject: what it concerned (``models:/churn/3``).
            after: details (JSON data).
            run_id: the Airflow run id, if any.
            retries: attempts when another writer took the same record number.

        Returns:
            The record's number.

        Raises:
            StoreUnavailable: the database cannot be reached.
            ControlError: the record could not be written.
        """
        self._prepare()
        key = load_key(self.key_file, create=True)
        for _ in range(retries):
            try:
                with self.engine.begin() as conn:
                    rec = append_in(conn, key, actor, action, subject, None, after, run_id)
            except IntegrityError:
                continue  # another audit writer took this record number: retry on the new head
            except OperationalError as e:
                if "locked" in str(e) or "busy" in str(e):
                    time.sleep(0.02)
                    continue
                raise StoreUnavailable(f"cannot write the audit log {self._safe_url()}: {e}") from e
            except SQLAlchemyError as e:
                raise ControlError(f"cannot write the audit log {self._safe_url()}: {e}") from e
            try:
                advance_head(key, self.key_file.parent, self.url, Head(rec.id, rec.mac))
            except (OSError, ControlError) as e:
                log.warning("audit head anchor not advanced: %s", e)
            return int(rec.id)
        raise ControlError(f"cannot write the audit log: audit head kept moving after {retries} attempts")

    def _apply_once(
        self,
        key: bytes,
        changes: Mapping[str, RoutesDoc | None],
        actor: str,
        reason: str,
        run_id: str | None,
        action: str,
        only_missing: bool,
    ) -> tuple[int, Head | None]:
        now = datetime.now(UTC).isoformat()
        with self.engine.begin() as conn:
            # the counter first: it takes the write lock before anything is read
            conn.execute(
                routes_generation.update()
                .where(routes_generation.c.id == 1)
                .values(generation=routes_generation.c.generation + 1)
            )
            gen = int(
                conn.execute(
                    sa.select(routes_generation.c.generation).where(routes_generation.c.id == 1)
                ).scalar_one()
            )
            rows = {
                str(r.model): r
                for r in conn.execute(
                    sa.select(desired_routes).where(desired_routes.c.model.in_(list(changes)))
                ).all()
            }
            last: Head | None = None
            for model, doc in changes.items():
                row = rows.get(model)
                before = json.loads(row.document) if row is not None and row.document else None
                if (only_missing and row is not None) or before == doc:
                    continue
                values = {
                    "document": None if doc is None else json.dumps(doc, sort_keys=True),
                    "generation": gen, "actor": actor, "reason": reason, "run_id": run_id, "updated_at": now,
                }
                if row is None:
                    conn.execute(desired_routes.insert().values(model=model, **values))
                else:
                    conn.execute(desired_routes.update().where(desired_routes.c.model == model).values(**values))
                rec = append_in(conn, key, actor, action if doc is not None else "routes.delete",
                                f"routes:{model}", before, doc, run_id)
                last = Head(rec.id, rec.mac)
            if last is None:
                raise _Unchanged(max((int(r.generation) for r in rows.values()), default=gen - 1))
        return gen, last

    def dispose(self) -> None:
        """Close the pooled connections."""
        self.engine.dispose()

    def _safe_url(self) -> str:
        return self.engine.url.render_as_string(hide_password=True)
