//! The forecasting model, free of any binding code, so that its tests run
//! natively: a term profile shared by the batch with Holt's damped trend
//! on each series, additive Holt–Winters with a damped trend, or seasonal
//! naive with drift, over monthly series of demand.
//!
//! Every function here takes any input without panicking: short series,
//! hidden months and odd parameters end in an error or a fallback, never in
//! an index out of bounds or a division by zero.

/// The most months ahead one call may ask for.
pub const MAX_HORIZON: u32 = 36;

/// Which model forecasts a series with enough history.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// A seasonal profile shared by every series of the batch (academic
    /// terms are the same for every subject), multiplicative, and Holt's
    /// damped trend on each series with the season taken out
    /// (`model = "shared-season"`). One series' two years estimate twelve
    /// seasonal terms poorly; the whole batch's estimate them well.
    SharedSeason,
    /// Additive Holt–Winters with a damped trend (`model = "holt-winters"`).
    HoltWinters,
    /// The same month a season earlier, plus the average change from one
    /// season to the next (`model = "seasonal-naive"`).
    SeasonalNaive,
}

/// The model's parameters; the plugin reads each from its configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct Params {
    /// `model`: which model to use.
    pub method: Method,
    /// `alpha`: how fast the level follows new months, 0 to 1.
    pub alpha: f64,
    /// `beta`: how fast the trend follows changes in the level, 0 to 1.
    pub beta: f64,
    /// `gamma`: how fast the seasonal pattern follows new months, 0 to 1.
    pub gamma: f64,
    /// `phi`: the trend's damping per month ahead, 0 to 1.
    pub phi: f64,
    /// `season`: months in one season, at least 2.
    pub season: usize,
    /// `level`: the interval's nominal coverage, strictly between 0 and 1.
    pub level: f64,
    /// `min-history`: months needed to use the model rather than the level.
    /// The model's own need (two seasons for Holt–Winters, one for seasonal
    /// naive) applies when it is higher.
    pub min_history: usize,
}

impl Default for Params {
    fn default() -> Self {
        Params {
            method: Method::SharedSeason,
            alpha: 0.1,
            beta: 0.05,
            gamma: 0.3,
            phi: 0.8,
            season: 12,
            level: 0.8,
            min_history: 24,
        }
    }
}

impl Params {
    /// Checks the parameters, naming the configuration key that is wrong.
    pub fn check(&self) -> Result<(), String> {
        for (key, v) in [
            ("alpha", self.alpha),
            ("beta", self.beta),
            ("gamma", self.gamma),
            ("phi", self.phi),
        ] {
            if !(0.0..=1.0).contains(&v) {
                return Err(format!("`{key}` is {v}; it must be from 0 to 1"));
            }
        }
        // Written so that NaN fails too.
        let inside = self.level > 0.0 && self.level < 1.0;
        if !inside {
            return Err(format!(
                "`level` is {}; it must be above 0 and below 1, such as 0.8",
                self.level
            ));
        }
        if !(2..=600).contains(&self.season) {
            return Err(format!(
                "`season` is {}; it must be from 2 to 600 months, such as 12",
                self.season
            ));
        }
        Ok(())
    }

    /// The months of history needed to use the configured model.
    pub fn needed(&self) -> usize {
        let model = match self.method {
            Method::HoltWinters | Method::SharedSeason => 2 * self.season,
            Method::SeasonalNaive => self.season,
        };
        self.min_history.max(model)
    }
}

/// A forecast of one series.
#[derive(Debug, Clone, PartialEq)]
pub struct Output {
    /// One value per month ahead, never negative.
    pub values: Vec<f64>,
    /// The interval's lower bound per month, never above the value.
    pub low: Vec<f64>,
    /// The interval's upper bound per month, never below the value.
    pub high: Vec<f64>,
    /// The interval's nominal coverage.
    pub level: f64,
    /// Why, in plain words.
    pub reasons: Vec<String>,
}

/// Checks a horizon: 1 to [`MAX_HORIZON`] months.
pub fn check_horizon(horizon: u32) -> Result<(), String> {
    if horizon == 0 || horizon > MAX_HORIZON {
        return Err(format!(
            "the horizon is {horizon} months; ask for 1 to {MAX_HORIZON}"
        ));
    }
    Ok(())
}

/// Forecasts `horizon` months after a series that starts in `start` (year,
/// month 1 to 12), with `None` for hidden months. The error says what is
/// wrong with the input; `params` must have passed [`Params::check`].
#[cfg(test)]
pub fn forecast(
    values: &[Option<f64>],
    start: (i32, u8),
    horizon: u32,
    params: &Params,
) -> Result<Output, String> {
    forecast_with(values, start, horizon, params, None)
}

/// The same, with the batch's shared seasonal profile (from
/// [`shared_profile`]) for [`Method::SharedSeason`].
pub fn forecast_with(
    values: &[Option<f64>],
    start: (i32, u8),
    horizon: u32,
    params: &Params,
    profile: Option<&Profile>,
) -> Result<Output, String> {
    check_horizon(horizon)?;
    params.check()?;
    let (year, month) = start;
    if !(1..=12).contains(&month) {
        return Err(format!("the start month is {month}; a month is 1 to 12"));
    }
    if values.is_empty() {
        return Err("the series has no months".to_string());
    }
    for (t, v) in values.iter().enumerate() {
        if let Some(v) = v {
            let when = month_label(year, month, t);
            if !v.is_finite() {
                return Err(format!("the value for {when} is {v}, not a finite number"));
            }
            if *v < 0.0 {
                return Err(format!(
                    "the value for {when} is {v}, and demand is never negative"
                ));
            }
        }
    }
    if values.iter().all(Option::is_none) {
        return Err(
            "every month is hidden (too few readers), so there is nothing to forecast from"
                .to_string(),
        );
    }

    let m = params.season;
    let mut reasons = Vec::new();
    let (y, imputed) = impute(values, m);
    if let Some(r) = imputed.reason(m) {
        reasons.push(r);
    }
    let h = horizon as usize;
    let n = y.len();
    let needed = params.needed();

    let fit = if n < needed {
        reasons.push(fallback_reason(n, needed, m));
        level_forecast(&y, h, m)
    } else {
        match (params.method, profile) {
            (Method::SharedSeason, Some(profile)) => {
                reasons.push(format!(
                    "the yearly pattern of terms, shared by {} series, and this series' own \
                     level and trend over {n} months, a trend that levels off further ahead",
                    profile.series
                ));
                holt_on_profile(&y, h, profile, month, params)
            }
            (Method::HoltWinters | Method::SharedSeason, _) => {
                reasons.push(format!(
                    "Holt–Winters over {n} months: a pattern that repeats every {}, and a \
                     trend that levels off further ahead",
                    season_words(m)
                ));
                holt_winters(&y, h, params)
            }
            (Method::SeasonalNaive, _) => {
                let fit = seasonal_naive(&y, h, m);
                reasons.push(format!(
                    "seasonal naive over {n} months: the same month {}, moved by the \
                     average change from one season to the next ({:+.1})",
                    earlier_words(m),
                    fit.drift
                ));
                fit
            }
        }
    };
    if let Some(r) = growth_reason(&y, m) {
        reasons.push(r);
    }
    reasons.extend(season_reasons(&y, m, month));

    // Only values near the limits of f64 overflow; a clamp at zero would
    // hide the NaN that follows, so check before it.
    if !fit.sigma.is_finite() || fit.points.iter().any(|p| !p.is_finite()) {
        return Err("the values are too large to forecast".to_string());
    }
    let z = normal_quantile(0.5 + params.level / 2.0);
    let mut out = Output {
        values: Vec::with_capacity(h),
        low: Vec::with_capacity(h),
        high: Vec::with_capacity(h),
        level: params.level,
        reasons,
    };
    let mut held = 0;
    for (i, &point) in fit.points.iter().enumerate() {
        let steps = i + 1;
        let widen = match fit.growth {
            Growth::Months => (steps as f64).sqrt(),
            Growth::Seasons => (steps.div_ceil(m) as f64).sqrt(),
        };
        let half = z * fit.sigma * widen;
        if point < 0.0 {
            held += 1;
        }
        out.values.push(point.max(0.0));
        out.low.push((point - half).max(0.0));
        out.high.push((point + half).max(0.0));
    }
    if out.high.iter().any(|v| !v.is_finite()) {
        return Err("the values are too large to forecast".to_string());
    }
    if held > 0 {
        out.reasons.push(format!(
            "demand cannot fall below zero: {held} {} held at zero",
            plural(held, "month", "months")
        ));
    }
    out.reasons.push(format!(
        "the range from low to high should hold about {:.0}% of months; it comes from how \
         far past months strayed from the model, and widens further ahead",
        params.level * 100.0
    ));
    Ok(out)
}

/// How the interval widens with the months ahead.
#[derive(Debug, Clone, Copy)]
enum Growth {
    /// With the square root of the months ahead: `sigma` is the error one
    /// month ahead.
    Months,
    /// With the square root of the seasons ahead: `sigma` is the error one
    /// season ahead, or the spread around the level.
    Seasons,
}

/// A model's point forecasts, before the interval and the clamp at zero.
struct Fit {
    /// One per month ahead.
    points: Vec<f64>,
    /// The spread of the in-sample errors.
    sigma: f64,
    /// How the interval widens.
    growth: Growth,
    /// The seasonal naive model's change per season, else 0.
    drift: f64,
}

/// What imputation filled in.
#[derive(Debug, Default)]
struct Imputed {
    /// Months filled from the same month a season earlier.
    from_season: usize,
    /// Months filled from the level around them.
    from_level: usize,
}

impl Imputed {
    fn reason(&self, m: usize) -> Option<String> {
        let total = self.from_season + self.from_level;
        if total == 0 {
            return None;
        }
        let how = match (self.from_season, self.from_level) {
            (_, 0) => format!(" from the same month {}", earlier_words(m)),
            (0, _) => " from the average level around them".to_string(),
            (s, l) => format!(
                ": {s} from the same month {}, {l} from the average level around them",
                earlier_words(m)
            ),
        };
        Some(format!(
            "{total} hidden {} (too few readers) filled in{how}",
            plural(total, "month", "months")
        ))
    }
}

/// Fills hidden months: from the same month a season earlier where that is
/// known, else from the mean of the season before, else from the mean of
/// every month shown. At least one value must be `Some`.
fn impute(values: &[Option<f64>], m: usize) -> (Vec<f64>, Imputed) {
    let shown: Vec<f64> = values.iter().flatten().copied().collect();
    let overall = mean(&shown).unwrap_or(0.0);
    let mut y: Vec<f64> = Vec::with_capacity(values.len());
    let mut imputed = Imputed::default();
    for (t, v) in values.iter().enumerate() {
        let filled = match v {
            Some(v) => *v,
            None => {
                if let Some(earlier) = t
                    .checked_sub(m)
                    .and_then(|i| values.get(i).copied().flatten())
                {
                    imputed.from_season += 1;
                    earlier
                } else {
                    imputed.from_level += 1;
                    let window: Vec<f64> = values[t.saturating_sub(m)..t]
                        .iter()
                        .flatten()
                        .copied()
                        .collect();
                    mean(&window).unwrap_or(overall)
                }
            }
        };
        y.push(filled);
    }
    (y, imputed)
}

/// The flat fallback: the mean of the last season's months (or of all, when
/// there are fewer), with the spread around it as its error.
fn level_forecast(y: &[f64], h: usize, m: usize) -> Fit {
    let recent = &y[y.len().saturating_sub(m)..];
    let level = mean(recent).unwrap_or(0.0);
    let deviations: Vec<f64> = recent.iter().map(|v| v - level).collect();
    // One month says nothing about the spread: take the interval as wide
    // as the value.
    let sigma = if recent.len() < 2 {
        level
    } else {
        rms(&deviations)
    };
    Fit {
        points: vec![level; h],
        sigma,
        growth: Growth::Seasons,
        drift: 0.0,
    }
}

/// Seasonal naive with drift: the same month a season earlier, plus the
/// average change from one season to the next. Needs `y.len() >= m`.
fn seasonal_naive(y: &[f64], h: usize, m: usize) -> Fit {
    let n = y.len();
    let changes: Vec<f64> = (m..n).map(|t| y[t] - y[t - m]).collect();
    let drift = mean(&changes).unwrap_or(0.0);
    let residuals: Vec<f64> = changes.iter().map(|c| c - drift).collect();
    let points = (1..=h)
        .map(|step| {
            // The last month shown at the same point of the season, and how
            // many seasons ahead of it the target lies.
            let seasons = step.div_ceil(m);
            let back = (seasons * m).saturating_sub(step);
            let base = n
                .checked_sub(1 + back)
                .and_then(|i| y.get(i))
                .copied()
                .unwrap_or(0.0);
            base + drift * seasons as f64
        })
        .collect();
    let sigma = if residuals.len() < 2 {
        let level = mean(y).unwrap_or(0.0);
        rms(&y.iter().map(|v| v - level).collect::<Vec<_>>())
    } else {
        rms(&residuals)
    };
    Fit {
        points,
        sigma,
        growth: Growth::Seasons,
        drift,
    }
}

/// A seasonal profile shared by the series of a batch: one factor per
/// position in the season, with mean 1.
#[derive(Debug, Clone, PartialEq)]
pub struct Profile {
    /// The factor of each month of the year (for a 12-month season,
    /// January first): position `(start month - 1 + t) % season`.
    pub factors: Vec<f64>,
    /// How many series it was made from.
    pub series: usize,
}

/// The seasonal profile of a batch of series, each `(values, start
/// month)`: for each position in the season, the batch's demand there over
/// the mean demand of the seasons it falls in, weighted by volume. `None`
/// when no series has a whole season of demand.
pub fn shared_profile(batch: &[(&[Option<f64>], u8)], m: usize) -> Option<Profile> {
    if m < 2 {
        return None;
    }
    let mut demand = vec![0.0; m];
    let mut level = vec![0.0; m];
    let mut used = 0;
    for (values, start) in batch {
        if values.iter().all(Option::is_none) || !(1..=12).contains(start) {
            continue;
        }
        let (y, _) = impute(values, m);
        let mut any = false;
        for block in y.chunks_exact(m) {
            let mean = block.iter().sum::<f64>() / m as f64;
            if !(mean > 0.0 && mean.is_finite()) {
                continue;
            }
            any = true;
            for (i, v) in block.iter().enumerate() {
                let position = (usize::from(*start) - 1 + i) % m;
                demand[position] += v;
                level[position] += mean;
            }
        }
        used += usize::from(any);
    }
    if used == 0 {
        return None;
    }
    let raw: Vec<f64> = demand
        .iter()
        .zip(&level)
        .map(|(d, l)| if *l > 0.0 { d / l } else { 1.0 })
        .collect();
    let mean = raw.iter().sum::<f64>() / m as f64;
    if !(mean > 0.0 && mean.is_finite()) {
        return None;
    }
    Some(Profile {
        // A month with almost no demand anywhere keeps a small factor, so
        // that dividing by it stays tame.
        factors: raw.iter().map(|f| (f / mean).max(0.05)).collect(),
        series: used,
    })
}

/// Holt's damped trend on a series with the shared profile taken out, the
/// profile put back on the forecast. Needs `y.len() >= 2 * m`. Its errors
/// are one month ahead, in the series' own units.
fn holt_on_profile(y: &[f64], h: usize, profile: &Profile, start: u8, p: &Params) -> Fit {
    let m = profile.factors.len();
    let n = y.len();
    if m < 2 || n < 2 * m || !(1..=12).contains(&start) {
        return level_forecast(y, h, p.season);
    }
    let factor = |t: usize| profile.factors[(usize::from(start) - 1 + t) % m];
    let z: Vec<f64> = y.iter().enumerate().map(|(t, v)| v / factor(t)).collect();
    let (Some(mean1), Some(mean2)) = (mean(&z[..m]), mean(&z[m..2 * m])) else {
        return level_forecast(y, h, p.season);
    };
    let mut trend = (mean2 - mean1) / m as f64;
    let mut level = mean1 + trend * (m as f64 - 1.0) / 2.0;
    let mut residuals = Vec::with_capacity(n - m);
    for (t, &value) in z.iter().enumerate().skip(m) {
        let base = level + p.phi * trend;
        residuals.push(y[t] - base * factor(t));
        let previous = level;
        level = p.alpha * value + (1.0 - p.alpha) * base;
        trend = p.beta * (level - previous) + (1.0 - p.beta) * p.phi * trend;
    }
    let mut damping = 0.0;
    let mut power = 1.0;
    let points = (1..=h)
        .map(|step| {
            power *= p.phi;
            damping += power;
            (level + damping * trend) * factor(n - 1 + step)
        })
        .collect();
    Fit {
        points,
        sigma: rms(&residuals),
        growth: Growth::Months,
        drift: 0.0,
    }
}

/// Additive Holt–Winters with a damped trend (Hyndman and Athanasopoulos,
/// *Forecasting: Principles and Practice*, ETS(A,Ad,A)). Needs
/// `y.len() >= 2 * m`.
///
/// Initialised from the first two seasons: the level is the mean of season
/// 1, the trend the difference of the two seasons' means over `m`, and the
/// seasonal terms season 1's deviations from its level, with the trend
/// taken out.
/// The recursion then runs from the first month of season 2, so that every
/// residual is an honest forecast one month ahead.
fn holt_winters(y: &[f64], h: usize, p: &Params) -> Fit {
    let m = p.season;
    let n = y.len();
    let (mean1, mean2) = match (mean(&y[..m.min(n)]), mean(&y[m.min(n)..(2 * m).min(n)])) {
        (Some(a), Some(b)) => (a, b),
        // Too short for the model: the caller never lets this happen.
        _ => return level_forecast(y, h, m),
    };
    let mut trend = (mean2 - mean1) / m as f64;
    // Season 1's mean is its level in its middle month.
    let middle = (m as f64 - 1.0) / 2.0;
    let mut seasonal: Vec<f64> = (0..m)
        .map(|i| y[i] - (mean1 + trend * (i as f64 - middle)))
        .collect();
    let mut level = mean1 + trend * middle;
    let mut residuals = Vec::with_capacity(n - m);
    for (t, &value) in y.iter().enumerate().skip(m) {
        let s = seasonal[t % m];
        let base = level + p.phi * trend;
        residuals.push(value - (base + s));
        let previous = level;
        level = p.alpha * (value - s) + (1.0 - p.alpha) * base;
        trend = p.beta * (level - previous) + (1.0 - p.beta) * p.phi * trend;
        seasonal[t % m] = p.gamma * (value - base) + (1.0 - p.gamma) * s;
    }
    let mut damping = 0.0;
    let mut power = 1.0;
    let points = (1..=h)
        .map(|step| {
            power *= p.phi;
            damping += power;
            level + damping * trend + seasonal[(n - 1 + step) % m]
        })
        .collect();
    Fit {
        points,
        sigma: rms(&residuals),
        growth: Growth::Months,
        drift: 0.0,
    }
}

/// Demand over the last season against the season before, when both are
/// there and the earlier one had any.
fn growth_reason(y: &[f64], m: usize) -> Option<String> {
    let n = y.len();
    if n < 2 * m {
        return None;
    }
    let last: f64 = y[n - m..].iter().sum();
    let before: f64 = y[n - 2 * m..n - m].iter().sum();
    if before <= 0.0 {
        return None;
    }
    let change = (last / before - 1.0) * 100.0;
    let earlier = earlier_words(m);
    Some(if change.abs() < 5.0 {
        format!("demand held steady on the same months {earlier}")
    } else if change > 0.0 {
        format!("demand grew about {change:.0}% on the same months {earlier}")
    } else {
        format!(
            "demand fell about {:.0}% on the same months {earlier}",
            -change
        )
    })
}

/// Months of the year that stand out, from a classical decomposition: each
/// month's average distance from the centred moving average of a season
/// around it. Only for a 12-month season, and only when every month of the
/// year has been seen with a full season around it.
fn season_reasons(y: &[f64], m: usize, start_month: u8) -> Vec<String> {
    if m != 12 {
        return Vec::new();
    }
    let n = y.len();
    let half = m / 2;
    if n < m + 2 * half {
        return Vec::new();
    }
    let mut sum = [0.0; 12];
    let mut count = [0usize; 12];
    let mut trend_sum = 0.0;
    let mut trend_count = 0usize;
    for t in half..n - half {
        // A 2×12 moving average centred on `t`.
        let window = &y[t - half..=t + half];
        let inner: f64 = window[1..window.len() - 1].iter().sum();
        let ends = (window[0] + window[window.len() - 1]) / 2.0;
        let centred = (inner + ends) / m as f64;
        let calendar = (usize::from(start_month) + 11 + t) % 12;
        sum[calendar] += y[t] - centred;
        count[calendar] += 1;
        trend_sum += centred;
        trend_count += 1;
    }
    if count.contains(&0) || trend_count == 0 {
        return Vec::new();
    }
    let average = trend_sum / trend_count as f64;
    if average <= 0.0 {
        return Vec::new();
    }
    let profile: Vec<f64> = (0..12)
        .map(|i| sum[i] / count[i] as f64 / average)
        .collect();
    let mut reasons = Vec::new();
    let peaks: Vec<bool> = profile.iter().map(|&d| d > 0.15).collect();
    if let Some(months) = month_ranges(&peaks) {
        reasons.push(format!("peaks in {months} each year"));
    }
    let quiet: Vec<bool> = profile.iter().map(|&d| d < -0.15).collect();
    if let Some(months) = month_ranges(&quiet) {
        reasons.push(format!("quietest in {months}"));
    }
    reasons
}

const MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];

/// The marked months as runs, such as `March–May and October–November`;
/// `None` when none or all are marked. A run may wrap past December.
fn month_ranges(marked: &[bool]) -> Option<String> {
    if marked.len() != 12 || marked.iter().all(|&b| b) || !marked.contains(&true) {
        return None;
    }
    // Start after a month that is not marked, so that no run is split.
    let first = (0..12).find(|&i| !marked[i])?;
    let mut runs: Vec<(usize, usize)> = Vec::new();
    let mut open: Option<usize> = None;
    for k in 1..=12 {
        let i = (first + k) % 12;
        match (marked[i], open) {
            (true, None) => open = Some(i),
            (false, Some(s)) => {
                runs.push((s, (i + 11) % 12));
                open = None;
            }
            _ => {}
        }
    }
    runs.sort_unstable();
    let parts: Vec<String> = runs
        .iter()
        .map(|&(s, e)| {
            if s == e {
                MONTHS[s].to_string()
            } else {
                format!("{}–{}", MONTHS[s], MONTHS[e])
            }
        })
        .collect();
    Some(join_words(&parts))
}

/// `a`, `a and b`, `a, b and c`.
fn join_words(parts: &[String]) -> String {
    match parts {
        [] => String::new(),
        [one] => one.clone(),
        [rest @ .., last] => format!("{} and {last}", rest.join(", ")),
    }
}

fn fallback_reason(n: usize, needed: usize, m: usize) -> String {
    let level = if n > m {
        format!("the average of the last {m} months")
    } else {
        format!("the average of those {n} {}", plural(n, "month", "months"))
    };
    let what = if m == 12 {
        "last year's level"
    } else {
        "the recent level"
    };
    format!(
        "only {n} {} of history ({needed} needed): forecast is {what}, {level}, with no \
         season or trend",
        plural(n, "month", "months")
    )
}

/// `a year` for 12 months, else `6 months`.
fn season_words(m: usize) -> String {
    if m == 12 {
        "year".to_string()
    } else {
        format!("{m} months")
    }
}

/// `a year earlier` for 12 months, else `6 months earlier`.
fn earlier_words(m: usize) -> String {
    if m == 12 {
        "a year earlier".to_string()
    } else {
        format!("{m} months earlier")
    }
}

fn plural<'a>(n: usize, one: &'a str, many: &'a str) -> &'a str {
    if n == 1 { one } else { many }
}

/// `2024-03` for the month `t` months after `year`-`month`.
fn month_label(year: i32, month: u8, t: usize) -> String {
    let index = i64::from(year) * 12 + i64::from(month) - 1 + t as i64;
    format!("{}-{:02}", index.div_euclid(12), index.rem_euclid(12) + 1)
}

fn mean(v: &[f64]) -> Option<f64> {
    if v.is_empty() {
        None
    } else {
        Some(v.iter().sum::<f64>() / v.len() as f64)
    }
}

/// The root mean square: the spread of errors around zero, bias included;
/// 0 for no values.
fn rms(v: &[f64]) -> f64 {
    mean(&v.iter().map(|e| e * e).collect::<Vec<_>>()).map_or(0.0, f64::sqrt)
}

/// The standard normal quantile at `p`, 0 < p < 1, by Acklam's rational
/// approximation (relative error below 1.2e-9); clamped to ±8.3 outside.
pub fn normal_quantile(p: f64) -> f64 {
    const A: [f64; 6] = [
        -3.969683028665376e1,
        2.209460984245205e2,
        -2.759285104469687e2,
        1.38357751867269e2,
        -3.066479806614716e1,
        2.506628277459239,
    ];
    const B: [f64; 5] = [
        -5.447609879822406e1,
        1.615858368580409e2,
        -1.556989798598866e2,
        6.680131188771972e1,
        -1.328068155288572e1,
    ];
    const C: [f64; 6] = [
        -7.784894002430293e-3,
        -3.223964580411365e-1,
        -2.400758277161838,
        -2.549732539343734,
        4.374664141464968,
        2.938163982698783,
    ];
    const D: [f64; 4] = [
        7.784695709041462e-3,
        3.224671290700398e-1,
        2.445134137142996,
        3.754408661907416,
    ];
    const LOW: f64 = 0.02425;
    if p.is_nan() {
        return 0.0;
    }
    if p <= 0.0 {
        return -8.3;
    }
    if p >= 1.0 {
        return 8.3;
    }
    if p < LOW {
        let q = (-2.0 * p.ln()).sqrt();
        (((((C[0] * q + C[1]) * q + C[2]) * q + C[3]) * q + C[4]) * q + C[5])
            / ((((D[0] * q + D[1]) * q + D[2]) * q + D[3]) * q + 1.0)
    } else if p <= 1.0 - LOW {
        let q = p - 0.5;
        let r = q * q;
        (((((A[0] * r + A[1]) * r + A[2]) * r + A[3]) * r + A[4]) * r + A[5]) * q
            / (((((B[0] * r + B[1]) * r + B[2]) * r + B[3]) * r + B[4]) * r + 1.0)
    } else {
        let q = (-2.0 * (1.0 - p).ln()).sqrt();
        -(((((C[0] * q + C[1]) * q + C[2]) * q + C[3]) * q + C[4]) * q + C[5])
            / ((((D[0] * q + D[1]) * q + D[2]) * q + D[3]) * q + 1.0)
    }
}
