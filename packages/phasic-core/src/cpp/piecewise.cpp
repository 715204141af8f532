// Piecewise uniformization for acyclic continuous graphs: the rate of each piece of
// time is the largest exit rate among the states that still hold mass, so graphs
// that lose their fast states early (coalescents) need far fewer steps. Serves the
// plain pdf (T = double, not strict) and the scaled kernels (strict, any T).
#include <algorithm>
#include <cmath>
#include <limits>
#include <utility>
#include <vector>

#include "piece_rows.hpp"
#include "poisson.hpp"
#include "sweeps.hpp"
#include "threads.hpp"
#include "time_anchors.hpp"
#include "time_windows.hpp"

namespace phasic {
namespace kernel {
namespace {

// Continuous, acyclic graphs: piecewise uniformization, for the density alone (T =
// double) or with its derivatives (T = Dual). Mass only moves forward in the Layout
// numbering (topological for acyclic graphs), so once the vector is zero below index
// lo, exp(S dt) only involves states >= lo and a piece of time can use the largest
// exit rate among them (a suffix maximum) instead of the global one, held constant in
// theta (any rate at least the exit rates gives the same exp(S dt), so only P carries
// derivatives). Coalescent-like graphs lose their fast states early, so later pieces
// need far fewer steps. A piece spans kPieceSteps steps' worth of time (doubling while
// the rate does not drop) or up to the last requested time; it sums u P^n once for
// every requested time inside it and as the vector at its end, which starts the next.
//
// It works unscaled (values are probabilities) and bounds everything it neglects in
// L1, values and derivatives apart: entries dropped at the front of a piece or flushed
// below kPieceFlush, and the Poisson tail of each end vector. Neglected value mass m and
// derivative mass g (summed over directions) change a later density at time t by at
// most smax m, and its derivatives by at most smax g + m (ds_max + t smax dS_max)
// (d/dtheta of m e^{S tau} s, |dS| the row sums of the derivatives of S). A piece's
// times stop by the per-time bounds of `uniformized` held to 1e-11; after each piece
// its times are checked against what was neglected until their series were complete
// (5e-11 of the value, and of the largest partial or 5e-14 of the value). `strict` (the scaled
// kernels) also refuses densities below 1e-280, where unscaled arithmetic may have
// underflowed; otherwise (the plain pdf) an error within 1e-21 of the largest density
// is accepted, as in continuous_distribution. A run whose checks fail runs once more
// with its cuts held lower by the margin the worst time needed (a density far below
// those the front was dropped against: a far tail, an extreme theta); false when that
// fails too or a series does not converge: the single sweep then runs instead.
//
// Steps are cut into fixed chunks of rows whose partial sums are added in chunk order,
// so results do not depend on the team size; big graphs run each piece on a team.
constexpr double kPieceSteps = 64.0;  // a piece spans this many steps' worth of time
constexpr double kLoss = 1e-24;       // neglected at a cut, relative to the last density (first try)
constexpr double kRel = 1e-11, kTanAbs = 1e-14;     // a time's series is complete
constexpr double kCheck = 5e-11, kCheckTan = 5e-14;  // a time is within what was neglected
constexpr int32_t kChunk = 256;                     // rows per chunk (fixed: same bits)

template <class T>
class PiecewiseSweep {
 public:
  static constexpr int N = Tangents<T>::n;

  PiecewiseSweep(const Structure& s, const Workspace<T>& ws, const double* times,
                 int64_t n_times, bool strict, double loss)
      : s_(s), ws_(ws), L_(s.layout), times_(times), n_times_(n_times), strict_(strict),
        loss_(loss), n_(s.n), nnz_(s.layout.in_src.size()) {}

  // The per-row rates, the starting vector and the buffers. False when the graph
  // does not qualify or one sweep is cheaper (the single sweep then runs).
  bool prepare();

  // Every requested time's series into out (unscaled: ls is 0 or -inf). False when a
  // check fails or a series does not converge; "too stiff" past 2e6 steps.
  bool run(Scaled<T>* out);

  // After a failed run: the factor by which the drops' budget should shrink for the
  // failing density to pass (0: a retry would not help).
  double shortfall() const { return checks_failed_ ? shortfall_ : 0.0; }

 private:
  // One piece [t_a, t_end] at rate lambda, serving the sorted times [first, last).
  struct Piece {
    double t_a, t_end, lambda, inv, mu, step_cap, dp_max, w_end;
    size_t first, last, remaining;
    int32_t zlo, zhi, ra, rb;  // end vector window; rows of this step
    int64_t step = 0, target = 0;  // times are summed once step >= target
    bool end_done = false, finished = false, failed = false;
    double mass0 = 0.0, dv0 = 0.0;       // value and derivative mass of the start vector
    T sp_end = 0.0;                      // density at t_end
    double tail_m = 0.0, tail_g = 0.0;  // neglected tail of the end vector
  };

  double margin(int64_t i, double lm, double lg) const;
  void check(int64_t i, double lm, double lg);
  void set_rate(double lambda);
  void drop_front();
  bool run_piece(Piece& pc);
  void start_piece(Piece& pc) const;
  void step_chunk(Piece& pc, int64_t ck);
  void after_step(Piece& pc);
  void close_times(Piece& pc, bool empty);
  void check_end_tail(Piece& pc, double mass, double dv1);
  void end_piece(const Piece& pc);

  const Structure& s_;
  const Workspace<T>& ws_;
  const Layout& L_;
  const double* times_;
  const int64_t n_times_;
  const bool strict_;
  const double loss_;  // what a cut may neglect, relative to the last density
  const int32_t n_;
  const size_t nnz_;

  // Per row q (gather order): suffix maxima of the exit rate and of the row sums of
  // |dS|; absorption rates; P = I + S / lambda_set_ (pu, diag).
  std::vector<double> gm_, dsm_;
  std::vector<T> absq_, pu_, diag_;
  double smax_ = 0.0, ds_max_ = 0.0, reach_ = 0.0, t_last_ = 0.0, lambda_set_ = -1.0;
  // The stepping buffers (cur_, nxt_) and the end vector z_ that starts the next piece.
  std::vector<T> v_, next_, zv_;
  T* cur_ = nullptr;
  T* nxt_ = nullptr;
  T* z_ = nullptr;
  int32_t lo_ = 0, hi_ = -1;   // window of the current vector's nonzero entries
  int32_t slo_ = 0, shi_ = -1;  // rows of nxt_ that may be nonzero
  // Requested times sorted (idx_); per time: its series, mu within the piece, done,
  // and the neglected value and derivative mass when its series was complete (what
  // is neglected later in its piece cannot reach it).
  std::vector<int64_t> idx_;
  std::vector<T> acc_;
  std::vector<double> tmu_, tlost_m_, tlost_g_;
  std::vector<char> tdone_, twait_;  // twait_: its anchor waits for more records
  // The piece's terms, and the value and derivative mass neglected after each step.
  std::vector<TermRecord<T>> rec_;
  std::vector<double> rec_lost_m_, rec_lost_g_;
  // Per-chunk partial sums: c, and (kept mass, kept magnitude, lost mass, lost |d|).
  std::vector<T> part_c_;
  std::vector<double> part_;
  double row_cost_ = 0.0, rows_done_ = 0.0;
  int team_ = 1;
  double lost_m_ = 0.0, lost_g_ = 0.0;  // neglected value and derivative mass so far
  T last_ = 0.0;                        // density at the start of the next piece
  double max_f_ = 0.0;
  int64_t total_steps_ = 0;
  bool stiff_ = false;
  bool checks_failed_ = false;
  double shortfall_ = 1.0;
};

template <class T>
bool PiecewiseSweep<T>::prepare() {
  const int32_t n = n_;
  if (!s_.acyclic || s_.discrete || n == 0 || n_times_ == 0) return false;
  gm_.resize(static_cast<size_t>(n));
  dsm_.resize(static_cast<size_t>(n));
  absq_.resize(static_cast<size_t>(n));
  v_.resize(static_cast<size_t>(n));
  lo_ = n;
  hi_ = -1;
  for (int32_t q = 0; q < n; ++q) {
    const int32_t j = L_.u_tidx[q];
    gm_[q] = value(ws_.lam[j]);
    absq_[q] = ws_.absv[j];
    smax_ = std::max(smax_, value(absq_[q]));
    v_[q] = ws_.alpha[j];
    if (!is_zero(v_[q])) {
      lo_ = std::min(lo_, q);
      hi_ = q;
    }
    dsm_[q] = 0.0;
    if constexpr (N > 0) {
      for (int k = 0; k < N; ++k) {
        double row = std::fabs(ws_.lam[j].d[k]);
        for (int64_t e = s_.tt_ptr[j]; e < s_.tt_ptr[j + 1]; ++e)
          row += std::fabs(ws_.w[s_.off_tt + e].d[k]);
        dsm_[q] = std::max(dsm_[q], row);
        ds_max_ = std::max(ds_max_, std::fabs(absq_[q].d[k]));
      }
    }
  }
  for (int32_t q = n - 2; q >= 0; --q) {
    gm_[q] = std::max(gm_[q], gm_[q + 1]);
    dsm_[q] = std::max(dsm_[q], dsm_[q + 1]);
  }
  double t_last = 0.0;  // (a plain local: std::max_element reloads its best per time)
  for (int64_t i = 0; i < n_times_; ++i) t_last = times_[i] > t_last ? times_[i] : t_last;
  t_last_ = t_last;
  // Short sweeps are cheaper in one piece: each cut costs a Poisson tail, and a
  // piecewise step does more per row (the end vector, the flush). Measured with
  // derivatives, 200 times: Kingman n = 10 (41 states) one sweep 1.4-2.6x faster up to
  // lambda t_max ~ 1,000 steps, n = 12 (77) up to ~900; n = 15 (175) 1.7x faster at
  // 405 steps and even at 776; n = 20 (626) piecewise 1.3x faster from ~1,000. One
  // sweep up to 1,000 steps below 150 states, 800 below 400 states, else 400.
  const double one_sweep_steps = n < 150 ? 1000.0 : n < 400 ? 800.0 : 400.0;
  if (!(smax_ > 0.0) || lo_ > hi_ || gm_[lo_] * t_last_ < one_sweep_steps) return false;
  // Sorted by (time, index): direct keys sort several times faster than indices
  // compared through the times (10,000 observed times: ~1 ms otherwise).
  std::vector<std::pair<double, int64_t>> key(static_cast<size_t>(n_times_));
  for (int64_t i = 0; i < n_times_; ++i) key[i] = {times_[i], i};
  std::sort(key.begin(), key.end());
  idx_.resize(static_cast<size_t>(n_times_));
  for (int64_t i = 0; i < n_times_; ++i) idx_[i] = key[i].second;
  // Effect of one unit of neglected magnitude on any later density or derivative.
  reach_ = smax_ * (1.0 + t_last_ * dsm_[0]) + ds_max_;

  const size_t nt = static_cast<size_t>(n_times_);
  next_.resize(static_cast<size_t>(n));
  zv_.resize(static_cast<size_t>(n));
  pu_.resize(nnz_);
  diag_.resize(static_cast<size_t>(n));
  acc_.resize(nt);
  tmu_.resize(nt);
  tdone_.resize(nt);
  twait_.assign(nt, 0);
  tlost_m_.resize(nt);
  tlost_g_.resize(nt);
  cur_ = v_.data();
  nxt_ = next_.data();
  z_ = zv_.data();
  const int64_t n_chunks = (static_cast<int64_t>(n) + kChunk - 1) / kChunk;
  part_c_.resize(static_cast<size_t>(n_chunks));
  part_.resize(static_cast<size_t>(4 * n_chunks));
  row_cost_ = (static_cast<double>(nnz_) + n) / n * (N + 1);
  team_ = sweep_team(row_cost_ * n);
  for (int32_t q = lo_; q <= hi_; ++q) fma_into(last_, cur_[q], absq_[q]);
  max_f_ = value(last_);
  slo_ = n;
  shi_ = -1;
  return true;
}

// How far time i is within the checks, its series complete with lm and lg neglected:
// the smallest ratio of what a check allows to what was neglected (>= 1: within).
template <class T>
double PiecewiseSweep<T>::margin(int64_t i, double lm, double lg) const {
  const double f = value(acc_[i]), g = max_tangent(acc_[i]);
  const double em = smax_ * lm;
  const double eg = smax_ * lg + lm * (ds_max_ + times_[i] * smax_ * dsm_[0]);
  auto ratio = [](double allowed, double err) {
    return err > 0.0 ? allowed / err : std::numeric_limits<double>::infinity();
  };
  if (!strict_) return em < 1e-300 ? ratio(1.0, 0.0) : ratio(std::max(kCheck * f, 1e-21 * max_f_), em);
  if (f < 1e-280 && times_[i] > 0.0) return 0.0;  // may have underflowed
  const double r = ratio(kCheck * f, em);
  return N == 0 ? r : std::min(r, ratio(std::max(kCheck * g, kCheckTan * f), eg));
}

// Checks time i; on failure, notes how much smaller the neglected mass should be (a
// tenth of the smallest margin: drops and tails scale with loss_). The run goes on, so
// that a retry knows the margin every time needs.
template <class T>
void PiecewiseSweep<T>::check(int64_t i, double lm, double lg) {
  const double r = margin(i, lm, lg);
  if (r >= 1.0) return;
  checks_failed_ = true;
  shortfall_ = std::min(shortfall_, 0.1 * r);
}

// P = I + S / lambda in gather order (kept while the rate does not change).
template <class T>
void PiecewiseSweep<T>::set_rate(double lambda) {
  if (lambda == lambda_set_) return;
  const double inv = 1.0 / lambda;
  for (size_t k = 0; k < nnz_; ++k) pu_[k] = ws_.w[L_.in_edge[k]] * inv;
  for (int32_t q = 0; q < n_; ++q) diag_[q] = clamp_value(1.0 - ws_.lam[L_.u_tidx[q]] * inv);
  lambda_set_ = lambda;
}

// Drops front entries whose effect is at most kLoss of the last density.
template <class T>
void PiecewiseSweep<T>::drop_front() {
  const double budget = loss_ * value(last_) / reach_;
  double dropped = 0.0;
  while (lo_ <= hi_ && dropped + magnitude(cur_[lo_]) <= budget) {
    dropped += magnitude(cur_[lo_]);
    lost_m_ += value(cur_[lo_]);
    lost_g_ += magnitude(cur_[lo_]) - std::fabs(value(cur_[lo_]));
    cur_[lo_++] = T(0.0);
  }
}

template <class T>
void PiecewiseSweep<T>::start_piece(Piece& pc) const {
  pc.inv = 1.0 / pc.lambda;
  pc.dp_max = dsm_[lo_] * pc.inv;
  pc.mu = pc.lambda * (pc.t_end - pc.t_a);
  pc.step_cap = 4.0 * pc.mu + 1e6;
  pc.remaining = pc.last - pc.first;
  pc.zlo = lo_;
  pc.zhi = hi_;
  // Rows of this step: the window, what it reaches, and nxt's stale rows.
  pc.ra = std::min(lo_, slo_);
  pc.rb = std::max({hi_, L_.reach_hi[hi_], shi_});
  pc.w_end = std::exp(-pc.mu);
  for (int32_t q = lo_; q <= hi_; ++q) {
    pc.mass0 += value(cur_[q]);
    pc.dv0 += magnitude(cur_[q]) - std::fabs(value(cur_[q]));
  }
}

// The piece's series: the requested times into acc_, the density at t_end into
// pc.sp_end, the vector at t_end into cur_, the bounds on its neglected tail into
// pc.tail_m and pc.tail_g (they reach later pieces only). False: a series did not
// converge within the step caps.
template <class T>
bool PiecewiseSweep<T>::run_piece(Piece& pc) {
  set_rate(pc.lambda);
  for (size_t k = pc.first; k < pc.last; ++k) {
    const int64_t i = idx_[k];
    tmu_[i] = pc.lambda * (times_[i] - pc.t_a);
    tdone_[i] = 0;
    acc_[i] = 0.0;
  }
  start_piece(pc);
  rec_.clear();
  rec_lost_m_.clear();
  rec_lost_g_.clear();
#pragma omp parallel num_threads(team_) if (team_ > 1)
  while (!pc.finished) {
    const int64_t c0 = pc.ra / kChunk, c1 = pc.rb / kChunk;
#pragma omp for schedule(static)
    for (int64_t ck = c0; ck <= c1; ++ck) step_chunk(pc, ck);
#pragma omp single
    after_step(pc);
  }
  if (pc.failed) return false;
  end_piece(pc);
  return true;
}

template <class T>
void PiecewiseSweep<T>::step_chunk(Piece& pc, int64_t ck) {
  const int64_t c0 = pc.ra / kChunk;
  piece_rows(std::max<int32_t>(pc.ra, static_cast<int32_t>(ck * kChunk)),
             std::min<int32_t>(pc.rb, static_cast<int32_t>(ck * kChunk + kChunk - 1)), cur_,
             nxt_, z_, pc.w_end, diag_.data(), absq_.data(), pu_.data(), L_.in_ptr.data(),
             L_.in_src.data(), part_c_[ck - c0], part_.data() + 4 * (ck - c0));
}

// One thread, after every chunk of a step: adds up the chunks, extends the series,
// checks the end vector's tail, and moves to the next step or ends the piece.
template <class T>
void PiecewiseSweep<T>::after_step(Piece& pc) {
  const int64_t c0 = pc.ra / kChunk, c1 = pc.rb / kChunk;
  rows_done_ += pc.rb - pc.ra + 1;
  T c = 0.0;
  double mass = 0.0, mag = 0.0;
  for (int64_t ck = c0; ck <= c1; ++ck) {
    const double* p = part_.data() + 4 * (ck - c0);
    c += part_c_[ck - c0];
    mass += p[0];
    mag += p[1];
    lost_m_ += p[2];
    lost_g_ += p[3];
  }
  if (!pc.end_done) {
    fma_into(pc.sp_end, c, pc.w_end);
    pc.zhi = std::max(pc.zhi, hi_);
  }
  const double dv1 = std::max(0.0, mag - mass);
  record_term(rec_, c, 0.0, mass, dv1);
  rec_lost_m_.push_back(lost_m_);
  rec_lost_g_.push_back(lost_g_);
  check_end_tail(pc, mass, dv1);
  slo_ = lo_;
  shi_ = hi_;
  lo_ = pc.ra;
  hi_ = pc.rb;
  trim_window(nxt_, lo_, hi_);
  std::swap(cur_, nxt_);
  ++pc.step;
  const bool empty = lo_ > hi_;  // later terms are 0
  if (pc.remaining > 0 && (empty || (pc.end_done && pc.step >= pc.target))) {
    close_times(pc, empty);
    // A standard deviation of the piece's widest Poisson weight more for times still open.
    pc.target = pc.step + static_cast<int64_t>(std::max(16.0, std::ceil(std::sqrt(pc.mu))));
  }
  if (empty || (pc.end_done && pc.remaining == 0)) {
    pc.finished = true;
  } else if (static_cast<double>(pc.step) > pc.step_cap ||
             static_cast<double>(++total_steps_) > kMaxSteps) {
    stiff_ = static_cast<double>(total_steps_) > kMaxSteps;
    pc.finished = pc.failed = true;
  } else {
    pc.ra = std::min(lo_, slo_);
    pc.rb = std::max({hi_, L_.reach_hi[hi_], shi_});
    pc.w_end = pc.end_done ? 0.0 : std::exp(LogPoisson(static_cast<double>(pc.step))(pc.mu));
  }
}

// Sums the recorded terms for every open time of the piece (time_windows.hpp) and
// closes those whose neglected Poisson tail is small enough: the stopping rule the
// sweep applied step by step before, with the bounds of `uniformized`.
template <class T>
void PiecewiseSweep<T>::close_times(Piece& pc, bool empty) {
  const TailRates rates{smax_, ds_max_, pc.dp_max};
  auto ok = [this](double verr, double terr, const T& acc) {
    const double f = value(acc);
    const bool v_ok = verr <= kRel * f || (!strict_ && (verr <= 1e-22 * max_f_ || verr < 1e-300));
    return v_ok && (N == 0 || terr <= kRel * max_tangent(acc) || terr <= kTanAbs * f);
  };
  auto vlimit = [this](const T& acc) {  // the largest verr that ok accepts
    const double v = kRel * value(acc);
    return strict_ ? v : std::max({v, 1e-22 * max_f_, 1e-300});
  };
  const int64_t M = static_cast<int64_t>(rec_.size());
  auto complete = [&](int64_t i, int64_t n_done) {
    tdone_[i] = 1;
    --pc.remaining;
    max_f_ = std::max(max_f_, value(acc_[i]));
    tlost_m_[i] = rec_lost_m_[n_done];
    tlost_g_[i] = rec_lost_g_[n_done];
  };
  // dense times share anchors (time_anchors.hpp)
  if (g_time_windows.load(std::memory_order_relaxed) &&
      g_time_anchors.load(std::memory_order_relaxed)) {
    std::vector<int64_t> open;
    for (size_t k = pc.first; k < pc.last; ++k)
      if (!tdone_[idx_[k]] && tmu_[idx_[k]] > 0.0) open.push_back(idx_[k]);
    anchor_times(rec_.data(), M, empty, pc.mass0, pc.dv0, rates, tmu_.data(), open,
                 largest_of(tmu_.data(), open), static_cast<const SweepVectors<T>*>(nullptr), ok,
                 [&](int64_t i, const T& h, double eps, int64_t n_last) {
                   acc_[i] = h * std::exp(-eps);
                   complete(i, n_last);
                   return true;
                 },
                 [&](int64_t i) {  // its anchor needs later records: wait for them
                   if (!empty) twait_[i] = 1;
                 });
  }
  for (size_t k = pc.first; k < pc.last; ++k) {
    const int64_t i = idx_[k];
    if (tdone_[i]) continue;
    if (twait_[i]) {  // the next round's anchors serve it
      twait_[i] = 0;
      continue;
    }
    int64_t n_done = 0;
    WindowResult res = WindowResult::kDone;
    if (tmu_[i] > 0.0) {
      if (g_time_windows.load(std::memory_order_relaxed))
        res = window_sum(rec_.data(), M, empty, tmu_[i], rates, acc_[i], n_done, ok, vlimit);
      else
        res = WindowResult::kSlow;
      if (res == WindowResult::kSlow)
        res = replay_sum(rec_.data(), M, empty, tmu_[i], rates, acc_[i], n_done, ok);
    } else {
      // A time so close to t_a that lambda (t - t_a) underflows is the series' first term.
      acc_[i] = rec_[0].c;
    }
    if (res != WindowResult::kDone) continue;
    complete(i, n_done);
  }
}

// The end vector's neglected tail: value mass W mass, derivative mass
// W (|dv|_1 + N dp_max mass r / (1 - r)); it reaches every later density.
template <class T>
void PiecewiseSweep<T>::check_end_tail(Piece& pc, double mass, double dv1) {
  const double m1 = static_cast<double>(pc.step + 1);
  if (pc.end_done || !(m1 + 1.0 > pc.mu)) return;
  const double r = pc.mu / (m1 + 1.0), W = pc.w_end * pc.mu / m1 / (1.0 - r);
  const double tm = W * mass, tg = W * (dv1 + N * pc.dp_max * mass * r / (1.0 - r));
  if (smax_ * tg + tm * reach_ <= loss_ * std::max(value(pc.sp_end), max_f_)) {
    pc.end_done = true;
    pc.tail_m = tm;
    pc.tail_g = tg;
  }
}

// Times still open when the vector emptied are complete; the next piece starts from
// the end vector and the two stepping buffers are cleared.
template <class T>
void PiecewiseSweep<T>::end_piece(const Piece& pc) {
  for (size_t k = pc.first; k < pc.last; ++k) {
    const int64_t i = idx_[k];
    if (!tdone_[i]) {
      tlost_m_[i] = lost_m_;
      tlost_g_[i] = lost_g_;
    }
  }
  std::fill(cur_, cur_ + n_, T(0.0));
  std::fill(nxt_, nxt_ + n_, T(0.0));
  std::swap(cur_, z_);
  slo_ = n_;
  shi_ = -1;
  lo_ = pc.zlo;
  hi_ = pc.zhi;
  trim_window(cur_, lo_, hi_);
}

template <class T>
bool PiecewiseSweep<T>::run(Scaled<T>* out) {
  const SweepTimer timer(team_, row_cost_ * n_);
  double t_prev = 0.0, last_lambda = 0.0, piece_steps = kPieceSteps;
  int64_t pieces = 0;
  size_t k = 0;  // next requested time (sorted)
  const size_t nt = static_cast<size_t>(n_times_);
  while (k < nt) {
    if (times_[idx_[k]] <= t_prev) {  // t = 0 and repeats of a piece's end
      acc_[idx_[k]] = last_;
      check(idx_[k++], lost_m_, lost_g_);
      continue;
    }
    drop_front();
    if (lo_ > hi_) {  // nothing left: every later density is 0
      for (; k < nt; ++k) {
        acc_[idx_[k]] = 0.0;
        check(idx_[k], lost_m_, lost_g_);
      }
      break;
    }
    const double lambda = gm_[lo_];
    // A cut costs one more Poisson tail; when the rate did not drop, the next piece is
    // twice as long, which bounds that overhead.
    piece_steps = pieces > 0 && !(lambda < last_lambda) ? 2.0 * piece_steps : kPieceSteps;
    last_lambda = lambda;
    double t_end = t_prev + piece_steps / lambda;
    if (!(t_end > t_prev && t_end < t_last_) || ++pieces > 100000) t_end = t_last_;
    size_t last_k = k;
    while (last_k < nt && times_[idx_[last_k]] <= t_end) ++last_k;
    Piece pc;
    pc.t_a = t_prev;
    pc.t_end = t_end;
    pc.lambda = lambda;
    pc.first = k;
    pc.last = last_k;
    if (!run_piece(pc)) {
      // Past 2e6 steps even piecewise: one sweep at the largest rate needs more.
      if (stiff_) too_stiff(gm_[0], t_last_);
      return false;
    }
    for (; k < last_k; ++k)
      check(idx_[k], tlost_m_[idx_[k]], tlost_g_[idx_[k]]);
    lost_m_ += pc.tail_m;
    lost_g_ += pc.tail_g;
    t_prev = t_end;
    last_ = pc.sp_end;
    max_f_ = std::max(max_f_, value(pc.sp_end));
  }
  timer.done(rows_done_ * row_cost_);
  g_sweep_madds.fetch_add(static_cast<int64_t>(rows_done_ * row_cost_), std::memory_order_relaxed);
  if (checks_failed_) return false;
  g_sweeps_piecewise.fetch_add(1, std::memory_order_relaxed);
  for (size_t i = 0; i < nt; ++i) {
    out[i].ls = is_zero(acc_[i]) ? kNegInf : 0.0;
    out[i].acc = acc_[i];
  }
  return true;
}

}  // namespace

template <class T>
bool piecewise_scaled(const Structure& s, const Workspace<T>& ws, const double* times,
                      int64_t n_times, bool strict, Scaled<T>* out) {
  // A density far below those the front entries were dropped against (a far tail,
  // an extreme theta) can fail its check: once more with the drops held that much
  // lower (cheaper than the single sweep that would run instead).
  double loss = kLoss;
  for (int attempt = 0; attempt < 2; ++attempt) {
    PiecewiseSweep<T> sweep(s, ws, times, n_times, strict, loss);
    if (!sweep.prepare()) return false;
    if (sweep.run(out)) return true;
    if (!(sweep.shortfall() > 0.0)) return false;
    loss *= sweep.shortfall();
  }
  return false;
}

#define PHASIC_INSTANTIATE(T)                                                                \
  template bool piecewise_scaled<T>(const Structure&, const Workspace<T>&, const double*,    \
                                    int64_t, bool, Scaled<T>*);
PHASIC_EACH_SCALAR(PHASIC_INSTANTIATE)
#undef PHASIC_INSTANTIATE

// The density alone, piecewise (acyclic graphs); false: use the single sweep.
bool piecewise_pdf(const Structure& s, const Workspace<double>& ws, const double* times,
                   int64_t n_times, double* pdf) {
  std::vector<Scaled<double>> o(static_cast<size_t>(n_times));
  if (!piecewise_scaled(s, ws, times, n_times, /*strict=*/false, o.data())) return false;
  for (int64_t i = 0; i < n_times; ++i) pdf[i] = o[i].acc;  // unscaled: ls is 0 or -inf
  return true;
}

}  // namespace kernel
}  // namespace phasic
