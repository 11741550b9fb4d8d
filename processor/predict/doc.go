// Package predict is the mathematics of tessera's predictions: the BG/NBD
// model of purchase counts and churn, the Gamma-Gamma model of spend, customer
// lifetime value, and RFM scores and segments. It is pure Go with no Kafka or
// store: the pipeline feeds it purchases and histograms, the fitter hands it
// merged histograms, and every task scores its profiles with the parameters.
//
// # Models
//
//   - BG/NBD: P. S. Fader, B. G. S. Hardie and K. L. Lee, "'Counting Your
//     Customers' the Easy Way: An Alternative to the Pareto/NBD Model",
//     Marketing Science 24(2), 275–284, 2005, with the log-likelihood in the
//     A1..A4 form of their note "Implementing the BG/NBD Model for Customer
//     Base Analysis in Excel" (2005, brucehardie.com/notes/004), the
//     conditional expectation of the paper's equation (10), and P(alive)
//     from "Computing P(alive) Using the BG/NBD Model" (2008).
//   - Gamma-Gamma: P. S. Fader, B. G. S. Hardie and K. L. Lee, "RFM and CLV:
//     Using Iso-Value Curves for Customer Base Analysis", Journal of Marketing
//     Research 42(4), 415–430, 2005, and Fader and Hardie, "The Gamma-Gamma
//     Model of Monetary Value" (2013).
//   - RFM: A. M. Hughes, "Strategic Database Marketing" (1994): quintile
//     scores of recency, frequency and monetary value, with the named segments
//     of [Segment].
//
// # Units
//
// Inputs are whole days: a purchase happens on a [Day], and several purchases
// by one customer on one day count as one transaction whose spend is their
// sum. The models' unit is the week: [Customer.Weeks] converts (a day is 1/7
// of a week), and every BG/NBD and CLV method takes and returns weeks. With
// these conventions the package reproduces the published CDNOW parameters
// (see TestCDNOWPublishedParameters).
//
// Money is in the purchase's own currency, without conversion; histograms
// keep spends rounded to cents.
//
// # Files
//
//   - customer.go: days, a customer's (x, t_x, T, spend) and FromPurchases.
//   - histogram.go: the mergeable histogram the tasks keep and the fitter fits.
//   - bgnbd.go: BG/NBD likelihood, fit, P(alive) and expected purchases.
//   - gammagamma.go: Gamma-Gamma fit, expected spend, CLV.
//   - fit.go: the maximum-likelihood search both fits share.
//   - rfm.go: RFM quintiles, scores and segments.
package predict
