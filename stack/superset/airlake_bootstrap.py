"""Superset's first-start steps in one process, run with Superset's own interpreter by ``airlake stack up``.

The same as ``superset db upgrade``, ``superset init``, ``superset fab create-admin`` (or ``reset-password``) and
``superset set-database-uri``, but paying for Superset's start-up once instead of four times. Reads
``AIRLAKE_SUPERSET_ADMIN``, ``AIRLAKE_SUPERSET_ADMIN_PASSWORD`` and ``AIRLAKE_SUPERSET_TRINO_URI`` besides
Superset's own configuration variables.
"""

import os
from pathlib import Path


def main() -> None:
    admin = os.environ["AIRLAKE_SUPERSET_ADMIN"]
    password = os.environ["AIRLAKE_SUPERSET_ADMIN_PASSWORD"]
    trino_uri = os.environ["AIRLAKE_SUPERSET_TRINO_URI"]

    import superset
    from flask_migrate import upgrade
    from superset.app import create_app

    app = create_app()
    with app.app_context():
        upgrade(directory=str(Path(superset.__file__).parent / "migrations"))
        print("metadata migrated", flush=True)

        from superset import appbuilder, db, security_manager
        from superset.utils import database as database_utils

        appbuilder.add_permissions(update_perms=True)
        security_manager.sync_role_definitions()
        db.session.commit()
        print("roles and permissions synced", flush=True)

        user = security_manager.find_user(username=admin)
        if user is None:
            role = security_manager.find_role(security_manager.auth_role_admin)
            user = security_manager.add_user(admin, "Airlake", "Admin", f"{admin}@airlake.invalid", role, password)
            if not user:
                raise SystemExit(f"could not create the admin user {admin}")
            print(f"admin user {admin} created", flush=True)
        else:
            security_manager.reset_password(user.id, password)
            print(f"admin user {admin} password set", flush=True)

        database_utils.get_or_create_db("trino", trino_uri, True)
        db.session.commit()
        print(f"database trino -> {trino_uri}", flush=True)


if __name__ == "__main__":
    main()
