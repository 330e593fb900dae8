"""The Alembic environment and versions of the catalog schema, shipped inside the package."""
