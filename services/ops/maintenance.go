package ops

import (
	"context"
	"fmt"

	"google.golang.org/grpc/codes"

	apiv1 "github.com/nexusrag/nexusrag/gen/go/nexusrag/api/v1"
	opsv1 "github.com/nexusrag/nexusrag/gen/go/nexusrag/ops/v1"
	"github.com/nexusrag/nexusrag/pkg/apierr"
	"github.com/nexusrag/nexusrag/pkg/maintenance"
)

// MaintenanceFunc runs a task in its owner (that service's internal Run*Maintenance).
type MaintenanceFunc func(ctx context.Context, task string) (*apiv1.MaintenanceRun, error)

// WithMaintenance gives the server the owners' maintenance calls, by service name.
func (s *Server) WithMaintenance(owners map[string]MaintenanceFunc) *Server {
	s.maintenance = owners
	return s
}

// RunMaintenanceTask runs a task now in the service that owns it.
func (s *Server) RunMaintenanceTask(ctx context.Context, req *opsv1.RunMaintenanceTaskRequest) (*opsv1.RunMaintenanceTaskResponse, error) {
	if err := maintenance.CheckTask(req.GetTask()); err != nil {
		return nil, err
	}
	if _, err := s.platformAdmin(ctx); err != nil {
		return nil, err
	}
	owner := maintenance.Owners[req.GetTask()]
	run, ok := s.maintenance[owner]
	if !ok {
		return nil, apierr.New(codes.Unimplemented, maintenance.CodeTaskUnavailable,
			fmt.Sprintf("task %s belongs to the %s service, which ops is not connected to: nothing ran", req.GetTask(), owner),
			"task", req.GetTask(), "owner", owner)
	}
	res, err := run(ctx, req.GetTask())
	if err != nil {
		return nil, err
	}
	return &opsv1.RunMaintenanceTaskResponse{Run: res}, nil
}
