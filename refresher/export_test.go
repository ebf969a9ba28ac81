package refresher

// SetIncidentHook sets the incident rotation's test hook (incident.go).
func SetIncidentHook(in *Incidents, h func(stage, connectionID string) error) { in.hook = h }
