// At most one render per animation frame, however fast messages arrive: work is marked dirty and
// drawn together. A hidden tab gets no frames, so it draws nothing until it is looked at again.

export function frameScheduler(render) {
  const dirty = new Set();
  let pending = false;

  function frame() {
    pending = false;
    const keys = [...dirty];
    dirty.clear();
    render(keys);
  }

  return function mark(key) {
    dirty.add(key);
    if (!pending) {
      pending = true;
      requestAnimationFrame(frame);
    }
  };
}
