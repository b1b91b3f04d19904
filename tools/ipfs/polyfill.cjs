// js-ipfs 0.66 (its libp2p) calls Promise.withResolvers, which Node only has from 22 on.
// Loaded with NODE_OPTIONS=--require by scripts/svc_ipfs.sh; a no-op on newer Node.
if (typeof Promise.withResolvers !== 'function') {
  Promise.withResolvers = function withResolvers () {
    let resolve, reject
    const promise = new Promise((res, rej) => { resolve = res; reject = rej })
    return { promise, resolve, reject }
  }
}
