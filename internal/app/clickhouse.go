package app

import (
	"context"
	"errors"

	"github.com/takedown-project/takedown/internal/config"
)

func openClickHouse(ctx context.Context, c config.ClickHouse) (EventStore, error) {
	return nil, errors.New("event store: clickhouse: not built in yet")
}
