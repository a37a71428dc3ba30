-- The posts service's own database, beside the auth service's (created by POSTGRES_DB).
CREATE DATABASE portcullis_posts OWNER portcullis;
