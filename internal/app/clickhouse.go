package app

import (
	"context"
	"errors"
	"log/slog"

	"github.com/takedown-project/takedown/internal/config"
)

func openClickHouse(ctx context.Context, c config.ClickHouse, log *slog.Logger) (EventStore, error) {
	return nil, errors.New("event store: clickhouse: not built in yet")
}
