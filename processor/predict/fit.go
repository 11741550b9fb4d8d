package predict

import (
	"fmt"
	"math"

	"gonum.org/v1/gonum/optimize"
)

// maxLogParam bounds the log-space parameters the optimisers may try, so
// that a wild step returns +Inf rather than NaN.
const maxLogParam = 30

// fitLogSpace minimises −ll over log-space parameters from x0: Nelder-Mead
// to find the basin robustly, then BFGS with the analytic gradient to
// converge tightly. ll returns the log-likelihood at log-space x and, if
// grad is not nil, stores its gradient there. fitLogSpace returns the
// optimum in log space.
func fitLogSpace(x0 []float64, ll func(x, grad []float64) float64) ([]float64, error) {
	inRange := func(x []float64) bool {
		for _, v := range x {
			if math.IsNaN(v) || math.Abs(v) > maxLogParam {
				return false
			}
		}
		return true
	}
	p := optimize.Problem{
		Func: func(x []float64) float64 {
			if !inRange(x) {
				return math.Inf(1)
			}
			v := -ll(x, nil)
			if math.IsNaN(v) {
				return math.Inf(1)
			}
			return v
		},
		Grad: func(grad, x []float64) {
			if !inRange(x) {
				for i := range grad {
					grad[i] = math.NaN()
				}
				return
			}
			ll(x, grad)
			for i := range grad {
				grad[i] = -grad[i]
			}
		},
	}
	nm, err := optimize.Minimize(p, x0, &optimize.Settings{
		Converger:       &optimize.FunctionConverge{Absolute: 1e-5, Relative: 1e-6, Iterations: 20},
		FuncEvaluations: 20000,
	}, &optimize.NelderMead{})
	if err != nil && nm == nil {
		return nil, fmt.Errorf("searching with Nelder-Mead: %w", err)
	}
	start := x0
	if nm != nil && inRange(nm.X) && !math.IsInf(nm.F, 0) {
		start = nm.X
	}
	res, err := optimize.Minimize(p, start, &optimize.Settings{
		GradientThreshold: gradTolerance / 10,
		Converger:         &optimize.FunctionConverge{Absolute: 1e-12, Relative: 1e-14, Iterations: 50},
		MajorIterations:   1000,
	}, &optimize.BFGS{})
	if res == nil {
		return nil, fmt.Errorf("converging with BFGS from %v: %w", start, err)
	}
	if !inRange(res.X) || math.IsInf(res.F, 0) || math.IsNaN(res.F) {
		return nil, fmt.Errorf("converging with BFGS: no finite optimum (%v at %v)", res.Status, res.X)
	}
	for _, v := range res.X {
		if math.Abs(v) > maxIdentifiedLogParam {
			return nil, fmt.Errorf("converging towards %v: %w", expAll(res.X), ErrNotIdentified)
		}
	}
	// Near the optimum the line search may fail to improve on a value that
	// is already optimal to rounding: the gradient, not the status, says
	// whether the fit converged.
	grad := make([]float64, len(x0))
	p.Grad(grad, res.X)
	for _, g := range grad {
		if !(math.Abs(g) < gradTolerance) {
			if err == nil {
				err = fmt.Errorf("%v", res.Status)
			}
			return nil, fmt.Errorf("converging with BFGS: gradient %v at %v: %w", grad, res.X, err)
		}
	}
	return res.X, nil
}

func expAll(x []float64) []float64 {
	out := make([]float64, len(x))
	for i, v := range x {
		out[i] = math.Exp(v)
	}
	return out
}

// maxIdentifiedLogParam bounds the log-space parameters of an acceptable
// fit: beyond e^±20 (about 2e-9 and 5e8) the likelihood is maximised at the
// edge of the parameter space, where no finite value is better than another.
const maxIdentifiedLogParam = 20

// gradTolerance is the largest gradient component, of the mean
// log-likelihood per customer with respect to the log-space parameters, at
// which a fit counts as converged. On CDNOW the parameters are then within
// 3e-6 (relative) of the optimum found with a gradient of 1e-9.
const gradTolerance = 1e-6
