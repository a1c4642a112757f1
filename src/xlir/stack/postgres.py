"""A PostgreSQL server for the local stack (``XLIR_DB=postgres``): the Debian package's binaries,
a cluster under the stack's state folder, TCP on 127.0.0.1 only (no Unix socket), password
(SCRAM) authentication, run as its own user (``postgres`` when started by root, else the caller).

Holds Airflow's metadata DB (``airflow``) and MLflow's backend store (``mlflow``, also its auth
tables). Each database is owned by a login role of its own name, neither superuser nor able to
create roles or databases, and only its owner may connect to it (``CONNECT`` revoked from PUBLIC):
MLflow's role owns its database and nothing else. Their generated passwords live in
``STATE/postgres/<role>.password``; the cluster's superuser ``xlir`` (password in
``STATE/postgres/password``, all mode 0600) is used only to create and hand over the roles and
databases. A cluster made before the roles existed (databases owned by ``xlir``) is handed over
on the next start: the databases, their ``public`` schema and every object in it.
"""

from __future__ import annotations

import glob
import os
import pwd
import secrets
import shutil
import subprocess
from pathlib import Path

from xlir.errors import XlirError
from xlir.stack.servers import check_reachable, hand_to, popen_as, server_user, wait_ready

USER = "xlir"  # the cluster's superuser: creates the roles and databases, nothing else
DATABASES = ("airflow", "mlflow")  # each owned by the login role of the same name


class PostgresError(XlirError):
    """The local PostgreSQL server could not be set up or reached."""


def bin_dir() -> Path:
    """Where ``initdb`` and ``postgres`` are: ``$XLIR_PG_BIN``, else the newest Debian package, else PATH."""
    if os.environ.get("XLIR_PG_BIN"):
        return Path(os.environ["XLIR_PG_BIN"])
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parts[-3]))
    if found:
        return Path(found[-1]).parent
    which = shutil.which("initdb")
    if which:
        return Path(os.path.realpath(which)).parent
    raise PostgresError("PostgreSQL server binaries not found: install the Debian package `postgresql` "
                        "(apt-get install postgresql) or set XLIR_PG_BIN to the folder holding initdb and postgres")


class LocalPostgres:
    def __init__(self, root: Path, port: int):
        self.root, self.port = Path(root), port
        self.data = self.root / "data"

    # -- identity

    def run_as(self) -> pwd.struct_passwd:
        """The server's own user: ``postgres`` for root (PostgreSQL refuses to run as root), else the caller."""
        return server_user("postgres", PostgresError)

    def popen_kwargs(self) -> dict:
        return popen_as("postgres", PostgresError)

    def password(self, role: str = USER) -> str:
        """The password of ``role`` (the superuser's by default), generated into a 0600 file the first time."""
        f = self.root / ("password" if role == USER else f"{role}.password")
        if not f.is_file():
            self.root.mkdir(parents=True, exist_ok=True)
            fd = os.open(f, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as out:
                out.write(secrets.token_urlsafe(24))
        return f.read_text().strip()

    def url(self, database: str, driver: str = "postgresql+psycopg2", *, password: bool = True) -> str:
        """The URL of ``database`` as its own role; ``password=False`` leaves the password out (the
        client takes it from ``PGPASSWORD``: a URL that ends up on a command line holds no secret)."""
        role = database if database in DATABASES else USER
        secret = f":{self.password(role)}" if password else ""
        return f"{driver}://{role}{secret}@127.0.0.1:{self.port}/{database}"

    # -- lifecycle

    def initialised(self) -> bool:
        return (self.data / "PG_VERSION").is_file()

    def init(self, echo=print) -> None:
        """``initdb`` a new cluster owned by the server's user (SCRAM passwords, UTF-8, no locale)."""
        user = self.run_as()
        self.data.mkdir(parents=True, exist_ok=True)
        check_reachable(self.data, user, "PostgreSQL", PostgresError)
        hand_to(self.data, user, 0o700)
        echo(f"initialising PostgreSQL in {self.data} (as user {user.pw_name})")
        pwfile = self.root / ".initdb-pw"  # readable by the server's user only, removed right after
        pwfile.unlink(missing_ok=True)
        fd = os.open(pwfile, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(self.password() + "\n")
        os.chown(pwfile, user.pw_uid, user.pw_gid)
        try:
            r = subprocess.run([str(bin_dir() / "initdb"), "-D", str(self.data), "-U", USER, "--pwfile", str(pwfile),
                                "--auth-host=scram-sha-256", "--auth-local=scram-sha-256", "-E", "UTF8", "--no-locale"],
                               capture_output=True, text=True, timeout=300, cwd=self.data, **self.popen_kwargs())
        finally:
            pwfile.unlink(missing_ok=True)
        if r.returncode != 0:
            raise PostgresError(f"initdb failed ({r.returncode}): {r.stderr[-2000:]}")

    def command(self) -> list[str]:
        return [str(bin_dir() / "postgres"), "-D", str(self.data), "-h", "127.0.0.1", "-p", str(self.port), "-k", ""]

    def wait_ready(self, alive, timeout: float = 60.0) -> None:
        """Until a login works (``alive()`` False: the server exited, stop waiting)."""
        import psycopg2

        wait_ready(lambda: self.connect(connect_timeout=3).close(), (psycopg2.OperationalError,), alive, timeout,
                   f"PostgreSQL on 127.0.0.1:{self.port}", PostgresError)

    def connect(self, dbname: str = "postgres", **kw):
        import psycopg2

        return psycopg2.connect(host="127.0.0.1", port=self.port, user=USER, password=self.password(), dbname=dbname, **kw)

    def ensure_databases(self, names: tuple[str, ...] = DATABASES) -> None:
        """Each database owned by its own unprivileged login role (created, or handed over from the
        superuser), with its password from its file; only the owner may connect."""
        from psycopg2 import sql

        conn = self.connect()
        conn.autocommit = True
        try:
            with conn.cursor() as cur:
                for name in names:
                    role, db = sql.Identifier(name), sql.Identifier(name)
                    cur.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (name,))
                    verb = "ALTER" if cur.fetchone() else "CREATE"
                    cur.execute(sql.SQL(verb + " ROLE {} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION "
                                        "NOBYPASSRLS PASSWORD %s").format(role), (self.password(name),))
                    cur.execute("SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = %s", (name,))
                    row = cur.fetchone()
                    if row is None:
                        cur.execute(sql.SQL("CREATE DATABASE {} OWNER {}").format(db, role))
                    elif row[0] != name:
                        cur.execute(sql.SQL("ALTER DATABASE {} OWNER TO {}").format(db, role))
                    cur.execute(sql.SQL("REVOKE ALL ON DATABASE {} FROM PUBLIC").format(db))
                    self._hand_over(name, name)
        finally:
            conn.close()

    def _hand_over(self, database: str, role: str) -> None:
        """Make ``role`` the owner of ``database``'s ``public`` schema and of every object in it
        (a database created by the superuser before the roles existed)."""
        from psycopg2 import sql

        conn = self.connect(database)
        conn.autocommit = True
        to = sql.Identifier(role)
        kinds = {"r": "TABLE", "p": "TABLE", "f": "FOREIGN TABLE", "v": "VIEW", "m": "MATERIALIZED VIEW", "S": "SEQUENCE"}
        try:
            with conn.cursor() as cur:
                cur.execute(sql.SQL("ALTER SCHEMA public OWNER TO {}").format(to))
                for relkinds in ("rpfvm", "S"):  # tables first: they take their own sequences and indexes along
                    cur.execute("SELECT c.relkind, c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                                "WHERE n.nspname = 'public' AND c.relkind = ANY(%s) AND pg_get_userbyid(c.relowner) <> %s",
                                (list(relkinds), role))
                    for kind, rel in cur.fetchall():
                        cur.execute(sql.SQL("ALTER " + kinds[kind] + " public.{} OWNER TO {}").format(sql.Identifier(rel), to))
                cur.execute("SELECT t.typtype, t.typname FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace "
                            "LEFT JOIN pg_class c ON c.oid = t.typrelid WHERE n.nspname = 'public' "
                            "AND (t.typtype IN ('e', 'd', 'r') OR (t.typtype = 'c' AND c.relkind = 'c')) "
                            "AND pg_get_userbyid(t.typowner) <> %s", (role,))
                for kind, name in cur.fetchall():
                    cur.execute(sql.SQL(("ALTER DOMAIN" if kind == "d" else "ALTER TYPE") + " public.{} OWNER TO {}")
                                .format(sql.Identifier(name), to))
                cur.execute("SELECT p.oid::regprocedure::text FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace "
                            "WHERE n.nspname = 'public' AND pg_get_userbyid(p.proowner) <> %s", (role,))
                for (routine,) in cur.fetchall():
                    cur.execute(sql.SQL("ALTER ROUTINE " + routine + " OWNER TO {}").format(to))
        finally:
            conn.close()
