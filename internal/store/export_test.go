package store

// ColumnNames and ColumnDefaults let the tests hold them against the table.
var (
	ColumnNames    = columnNames
	ColumnDefaults = columnDefaults
	MaxShapes      = maxShapes
)
