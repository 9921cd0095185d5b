-- Sessions group the turns of a conversation per tenant; messages are its turns; a
-- checkpoint is the run graph's state after each node of a run; audio are spoken answers
-- (the MP3 files live under AUDIO_DIR, named by their unguessable id).
-- +goose Up
CREATE TABLE run.sessions (
    tenant_id  text        NOT NULL,
    session_id text        NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, session_id)
);

CREATE TABLE run.messages (
    tenant_id  text        NOT NULL,
    session_id text        NOT NULL,
    seq        bigint      GENERATED ALWAYS AS IDENTITY,
    run_id     uuid        NOT NULL,
    role       text        NOT NULL CHECK (role IN ('user', 'assistant')),
    content    text        NOT NULL,
    citations  jsonb       NOT NULL DEFAULT '[]',
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, session_id, seq),
    FOREIGN KEY (tenant_id, session_id) REFERENCES run.sessions ON DELETE CASCADE
);

CREATE TABLE run.checkpoints (
    run_id     uuid        NOT NULL,
    step       int         NOT NULL,
    tenant_id  text        NOT NULL,
    session_id text        NOT NULL,
    node       text        NOT NULL,
    state      jsonb       NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (run_id, step)
);
CREATE INDEX checkpoints_by_session ON run.checkpoints (tenant_id, session_id, created_at);

CREATE TABLE run.audio (
    audio_id   text        PRIMARY KEY,
    tenant_id  text        NOT NULL,
    run_id     uuid        NOT NULL,
    bytes      int         NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);

-- +goose Down
DROP TABLE run.audio;
DROP TABLE run.checkpoints;
DROP TABLE run.messages;
DROP TABLE run.sessions;
