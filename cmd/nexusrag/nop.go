package main

import (
	"context"

	"github.com/nexusrag/nexusrag/pkg/audit"
)

// nopRecorder drops audit events, for read-only operator commands that record nothing.
type nopRecorder struct{}

func (nopRecorder) Record(context.Context, audit.Event) {}
