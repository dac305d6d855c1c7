// Softmax cross-entropy from logits with class labels (the formulas of reference.py), in two
// launches on CuPy's stream:
//
// xent_rows_<t>: one thread per row in a grid-stride loop, in double: the row's max, e^(z - m)
// (stored in grad), the log-sum, the row's term of the loss (into terms[row]) and the gradient
// row. A label outside [0, C) gives a NaN term and a NaN row, before any read of the row.
// xent_total_<t>: one block of XENT_THREADS threads sums the terms in a fixed order (strided
// partial sums, then a tree in shared memory) and writes loss[0] = sum / norm: deterministic.

#ifndef XENT_THREADS
#define XENT_THREADS 256  // a power of two; xent_total must be launched with exactly this many threads
#endif

template <typename T>
__device__ void xent_rows_impl(const T* __restrict__ z, const long long* __restrict__ y, long long n, int c,
                               double keep, double spread, double norm, T* __restrict__ grad,
                               double* __restrict__ terms) {
    const double qnan = nan("");
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n; i += (long long)blockDim.x * gridDim.x) {
        const T* zi = z + i * c;
        T* gi = grad + i * c;
        const long long t = y[i];
        if (t < 0 || t >= c) {
            terms[i] = qnan;
            for (int j = 0; j < c; ++j) gi[j] = (T)qnan;
            continue;
        }
        double m = (double)zi[0];
        for (int j = 1; j < c; ++j) {
            const double v = (double)zi[j];
            if (v > m) m = v;
        }
        double s = 0.0, shifted = 0.0;
        for (int j = 0; j < c; ++j) {
            const double d = (double)zi[j] - m;
            const double e = exp(d);
            gi[j] = (T)e;
            s += e;
            shifted += d;
        }
        const double log_s = log(s);
        double term = keep * (log_s - ((double)zi[t] - m));
        if (spread != 0.0) term += spread * (c * log_s - shifted);
        terms[i] = term;
        for (int j = 0; j < c; ++j) {
            double g = (double)gi[j] / s - spread;
            if (j == t) g -= keep;
            gi[j] = (T)(g / norm);
        }
    }
}

template <typename T>
__device__ void xent_total_impl(const double* __restrict__ terms, long long n, double norm, T* __restrict__ loss) {
    __shared__ double part[XENT_THREADS];
    double acc = 0.0;
    for (long long i = threadIdx.x; i < n; i += XENT_THREADS) acc += terms[i];
    part[threadIdx.x] = acc;
    __syncthreads();
    for (int half = XENT_THREADS / 2; half > 0; half >>= 1) {
        if ((int)threadIdx.x < half) part[threadIdx.x] += part[threadIdx.x + half];
        __syncthreads();
    }
    if (threadIdx.x == 0) loss[0] = (T)(part[0] / norm);
}

extern "C" {

__global__ void xent_rows_f32(const float* z, const long long* y, long long n, int c, double keep, double spread,
                              double norm, float* grad, double* terms) {
    xent_rows_impl<float>(z, y, n, c, keep, spread, norm, grad, terms);
}

__global__ void xent_rows_f64(const double* z, const long long* y, long long n, int c, double keep, double spread,
                              double norm, double* grad, double* terms) {
    xent_rows_impl<double>(z, y, n, c, keep, spread, norm, grad, terms);
}

__global__ void xent_total_f32(const double* terms, long long n, double norm, float* loss) {
    xent_total_impl<float>(terms, n, norm, loss);
}

__global__ void xent_total_f64(const double* terms, long long n, double norm, double* loss) {
    xent_total_impl<double>(terms, n, norm, loss);
}

}  // extern "C"
