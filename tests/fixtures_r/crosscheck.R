# Cross-check of evalkit.assessment.estimate_criteria against R's survey package.
# Run from the repository root:
#   Rscript tests/fixtures_r/crosscheck.R > tests/fixtures_r/crosscheck_R_output.txt
# tests/test_exit.py parses the output (R is not needed to run the tests).
#
# Inputs: fixture.csv (field survey of county 610102, 2018) and register.csv (its register).
# Constants: the 2018 poverty line of evalkit's policy (2995 yuan) and the rural population
# passed to estimate_criteria through `counties` (5000 persons).
suppressMessages(library(survey))
options(digits = 15)
dir <- "tests/fixtures_r"
line <- 2995
rural_population <- 5000
year <- 2018
guar <- c("food_clothing_ok", "education_ok", "medical_ok", "housing_ok", "water_ok")
ids <- c(household_id = "character", village_code = "character", county_code = "character")
d <- read.csv(file.path(dir, "fixture.csv"), colClasses = ids)
reg <- read.csv(file.path(dir, "register.csv"), colClasses = ids)
# pandas writes True/False, which read.csv leaves as text
as_lgl <- function(x) as.logical(toupper(as.character(x)))
for (g in c(guar, "approves")) d[[g]] <- as_lgl(d[[g]])
reg$registered <- as_lgl(reg$registered)

# household flags: exit standard = income strictly above the line and every guarantee
add_flags <- function(d) {
  meets <- d$surveyed_income_per_capita > line & rowSums(!as.matrix(d[guar])) == 0
  d$fail <- as.numeric(!meets)
  d$we_num <- d$household_size * (d$hh_stratum == "exited" & !meets)
  d$we_den <- d$household_size * (d$hh_stratum == "exited")
  d$mp_num <- d$household_size * (d$hh_stratum == "non_registered" & !meets)
  d$mp_den <- d$household_size * (d$hh_stratum == "non_registered")
  d$ap <- as.numeric(d$approves)
  d$one <- 1
  d$wp <- d$weight * d$household_size   # person weight on household rows
  d
}
d <- add_flags(d)

# Rare-error variants (same as tests/test_exit.py::_rare): every failing exited (non-registered)
# household except the first `keep` ones in household_id order is made to meet the standard.
rare <- function(d, keep) {
  for (hs in c("exited", "non_registered")) {
    f <- sort(d$household_id[d$hh_stratum == hs & d$fail == 1])
    fix <- d$household_id %in% f[seq_along(f) > keep]
    d$surveyed_income_per_capita[fix] <- 10 * line
    for (g in guar) d[[g]][fix] <- TRUE
  }
  add_flags(d)
}

# register totals in 2018
registered <- reg$registered & (is.na(reg$registration_year) | reg$registration_year <= year)
exited <- registered & !is.na(reg$exit_year) & reg$exit_year <= year
P <- sum(reg$household_size[registered & !exited])   # remaining registered poor persons
E <- sum(reg$household_size[exited])                 # exited registered persons
R <- rural_population
# docs/policy.md §4: the missed-poor rate applies to the non-registered RURAL population, i.e. the rural
# population less the registered persons (the register may list only part of the others).
N <- R - P - E
cat(sprintf("register P=%.15g E=%.15g N=%.15g R=%.15g\n", P, E, N, R))

show <- function(design_name, crit, est, se, D) {
  df <- degf(D); tq <- qt(0.975, df)
  cat(sprintf("design=%s criterion=%s est=%.15g se=%.15g lci=%.15g uci=%.15g df=%d\n",
              design_name, crit, est, se, est - tq * se, est + tq * se, df))
}

wr_design <- function(dd, w = ~weight)
  svydesign(ids = ~village_code, strata = ~stratum, weights = w, data = dd, nest = TRUE)

run <- function(design_name, dd, make = wr_design) {
  D <- make(dd)
  rr <- svyratio(~we_num + mp_num, ~we_den + mp_den, D, covmat = TRUE)
  V <- vcov(rr); cf <- coef(rr); nm <- names(cf)
  iwe <- which(nm == "we_num/we_den"); imp <- which(nm == "mp_num/mp_den")
  show(design_name, "wrongly_exited_rate", cf[iwe], sqrt(V[iwe, iwe]), D)
  show(design_name, "missed_poor_rate", cf[imp], sqrt(V[imp, imp]), D)
  m <- svymean(~ap, D)
  show(design_name, "approval_rate", coef(m), SE(m), D)
  # comprehensive incidence: (P + r_we E + r_mp N) / R, delta method on the totals
  tt <- svytotal(~we_num + we_den + mp_num + mp_den + ap + one, D)
  comp <- svycontrast(tt, bquote((.(P) + we_num / we_den * .(E) + mp_num / mp_den * .(N)) / .(R)))
  show(design_name, "comprehensive_poverty_rate", coef(comp), SE(comp), D)
  # the same from svyratio(covmat=TRUE): linear combination of the two ratios
  lin <- svycontrast(rr, setNames(c(E / R, N / R), c("we_num/we_den", "mp_num/mp_den")))
  cat(sprintf("design=%s check=linear_from_covmat est=%.15g se=%.15g\n", design_name,
              P / R + coef(lin), SE(lin)))
  # joint covariance of the three sample rates
  j <- svycontrast(tt, list(we = quote(we_num / we_den), mp = quote(mp_num / mp_den), ap = quote(ap / one)))
  Vj <- vcov(j)
  cat(sprintf("design=%s cov we_we=%.15g we_mp=%.15g we_ap=%.15g mp_mp=%.15g mp_ap=%.15g ap_ap=%.15g\n",
              design_name, Vj[1, 1], Vj[1, 2], Vj[1, 3], Vj[2, 2], Vj[2, 3], Vj[3, 3]))
}

# Korn-Graubard intervals: svyciprop(method = "beta"). The person-based rates are proportions of
# persons: person-weighted design (wp = weight x household_size on household rows), domain by
# subset(); estimate and SE equal svyratio(~we_num, ~we_den) on the household design (printed
# for the check). n = nrow(design) = sampled households in the domain, df = degf(domain design).
# R gives NaN bounds when the variance is 0 (p = 0 or 1).
kg <- function(design_name, dd, make = wr_design) {
  Dp <- make(dd, ~wp)
  Dh <- make(dd)
  one <- function(crit, D, ci) {
    p <- as.numeric(ci); v <- as.numeric(attr(ci, "var")); b <- attr(ci, "ci")
    neff <- p * (1 - p) / v * (qt(0.025, nrow(D) - 1) / qt(0.025, degf(D)))^2
    cat(sprintf("kg design=%s criterion=%s est=%.15g se=%.15g lci=%.15g uci=%.15g df=%d n=%d neff=%.15g\n",
                design_name, crit, p, sqrt(v), b[1], b[2], degf(D), nrow(D), neff))
  }
  De <- subset(Dp, hh_stratum == "exited")
  one("wrongly_exited_rate", De, svyciprop(~fail, De, method = "beta", level = 0.95))
  Dn <- subset(Dp, hh_stratum == "non_registered")
  one("missed_poor_rate", Dn, svyciprop(~fail, Dn, method = "beta", level = 0.95))
  one("approval_rate", Dh, svyciprop(~ap, Dh, method = "beta", level = 0.95))
}

cat("survey version:", as.character(packageVersion("survey")), "\n")
run("full", d)
kg("full", d)
# near zero: one wrongly-exited and one missed household in the sample; zero: none
d1 <- rare(d, 1)
run("near_zero", d1)
kg("near_zero", d1)
d0 <- rare(d, 0)
run("zero", d0)
kg("zero", d0)

# singleton: keep one village of the deep_poverty_village stratum
dv <- sort(unique(d$village_code[d$stratum == "deep_poverty_village"]))
ds <- d[d$stratum != "deep_poverty_village" | d$village_code == dv[1], ]
for (opt in c("certainty", "adjust", "average")) {
  options(survey.lonely.psu = opt)
  run(paste0("singleton_", opt), ds)
  kg(paste0("singleton_", opt), ds)
}
options(survey.lonely.psu = "fail")

# ---- two-stage design without replacement (fixture_fpc.csv, county 610103, 2018) -------------
# ids = village, household; strata = village stratum at stage 1 and village x household stratum
# (cell) at stage 2; fpc = population sizes from the register: villages per village stratum,
# households per village x household stratum. R's multistage variance: stage-1 term with
# (1 - n/N), plus n/N times the stage-2 term of each sampled village. No counties table: the
# rural population is the register's persons.
options(survey.lonely.psu = "certainty")
fpc_design <- function(dd, w = ~weight)
  svydesign(ids = ~village_code + household_id, strata = ~stratum + cell, fpc = ~N_villages + N_households,
            weights = w, data = dd, nest = TRUE)
d2 <- read.csv(file.path(dir, "fixture_fpc.csv"), colClasses = ids)
reg2 <- read.csv(file.path(dir, "register_fpc.csv"), colClasses = ids)
for (g in c(guar, "approves")) d2[[g]] <- as_lgl(d2[[g]])
reg2$registered <- as_lgl(reg2$registered)
d2 <- add_flags(d2)
d2$cell <- paste(d2$village_code, d2$hh_stratum)
register_totals <- function(reg) {
  registered <- reg$registered & (is.na(reg$registration_year) | reg$registration_year <= year)
  exited <- registered & !is.na(reg$exit_year) & reg$exit_year <= year
  P <<- sum(reg$household_size[registered & !exited]); E <<- sum(reg$household_size[exited])
  R <<- sum(reg$household_size); N <<- R - P - E
  cat(sprintf("register P=%.15g E=%.15g N=%.15g R=%.15g\n", P, E, N, R))
}
register_totals(reg2)
run("fpc_full", d2, fpc_design)
kg("fpc_full", d2, fpc_design)
run("fpc_wr", d2)          # the same sample with stage 1 with replacement (for comparison)
# take-all: the register's non-poverty villages are only the 4 sampled ones (a census of
# villages in that stratum: certainty units, no stage-1 variance there)
d3 <- d2
d3$N_villages[d3$stratum == "non_poverty_village"] <- length(unique(d3$village_code[d3$stratum == "non_poverty_village"]))
keep_v <- unique(c(d3$village_code[d3$stratum == "non_poverty_village"]))
vil2 <- read.csv(file.path(dir, "villages_fpc.csv"), colClasses = ids)
pov_v <- vil2$village_code[as_lgl(vil2$is_poverty_village)]
register_totals(reg2[reg2$village_code %in% c(pov_v, keep_v), ])
run("fpc_take_all", d3, fpc_design)
kg("fpc_take_all", d3, fpc_design)
# domain degrees of freedom: no exited household sampled in two of the non-poverty villages and
# one poverty village (svyciprop on the subset uses degf of the subset: 15 - 2 = 13 for the
# wrongly-exited rate, 16 for the design)
d4 <- d2
nv <- sort(unique(d4$village_code[d4$stratum == "non_poverty_village"]))[1:2]
pv <- sort(unique(d4$village_code[d4$stratum == "poverty_village"]))[1]
d4 <- d4[!(d4$hh_stratum == "exited" & d4$village_code %in% c(nv, pv)), ]
register_totals(reg2)
run("fpc_domain", d4, fpc_design)
kg("fpc_domain", d4, fpc_design)
