package handlers

import "maps"

// What the external tests (package handlers_test) may see of the inside.

// ProblemTypeBase prefixes every problem type URI.
const ProblemTypeBase = problemTypeBase

// ProblemKind is one row of the problem table.
type ProblemKind = problemKind

// ProblemKinds returns a copy of the table from codes to status and title.
func ProblemKinds() map[string]ProblemKind { return maps.Clone(problemKinds) }

// ErrorHandler is the server's Echo error handler.
var ErrorHandler = errorHandler

// CheckText is the NUL and trailing-data middleware.
var CheckText = checkText
