package store

import (
	"context"

	"gorm.io/gorm/clause"
)

// deploymentIDState is the controlplane_state row that holds the deployment's id.
const deploymentIDState = "deployment_id"

// EnsureDeploymentID returns this deployment's id, storing newID first when there is none
// yet. Replicas starting at once agree: the first insert wins and every caller returns
// the stored value. The id never changes afterwards.
func (s *Store) EnsureDeploymentID(ctx context.Context, newID string) (string, error) {
	st := controlPlaneState{Name: deploymentIDState, Value: newID, UpdatedAt: s.now().UTC()}
	err := s.db.WithContext(ctx).Clauses(clause.OnConflict{DoNothing: true}).Create(&st).Error
	if err != nil {
		return "", s.classify(err)
	}
	return s.DeploymentID(ctx)
}

// DeploymentID returns this deployment's id, or ErrNotFound before EnsureDeploymentID
// (App.Migrate) has run.
func (s *Store) DeploymentID(ctx context.Context) (string, error) {
	return s.ControlPlaneState(ctx, deploymentIDState)
}
