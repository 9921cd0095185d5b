-- Request quotas and usage. A tenant's quota columns are NULL until it has settings of
-- its own (its plan's defaults apply). Usage is counted in Redis by the gateway and rolled
-- up here per UTC hour by the billing service.
-- +goose Up
ALTER TABLE billing.tenants
    ADD COLUMN daily_requests_limit   bigint,
    ADD COLUMN monthly_requests_limit bigint,
    ADD COLUMN soft_cap_ratio         double precision,
    ADD COLUMN hard_cap_enabled       boolean;
CREATE TABLE billing.usage_hourly (
    tenant_id text        NOT NULL,
    hour      timestamptz NOT NULL,
    requests  bigint      NOT NULL,
    PRIMARY KEY (tenant_id, hour)
);
CREATE INDEX usage_hourly_hour_idx ON billing.usage_hourly (hour);

-- +goose Down
DROP TABLE billing.usage_hourly;
ALTER TABLE billing.tenants
    DROP COLUMN daily_requests_limit, DROP COLUMN monthly_requests_limit,
    DROP COLUMN soft_cap_ratio, DROP COLUMN hard_cap_enabled;
