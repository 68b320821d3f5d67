-- Run once, when the PostgreSQL volume is first initialised: the hub's database is
-- POSTGRES_DB (ngsp_hub); the gateway keeps its dossiers in a database of its own, so
-- that each service's migrations (Alembic) own their schema.
CREATE DATABASE ngsp_gateway OWNER ngsp;
