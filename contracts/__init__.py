"""Wire contracts shared by every component: topic names, errors, and (as they arrive)
readings, dead letters and alert events. Depends on no component and no broker library."""
