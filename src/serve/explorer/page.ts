// The explorer's page and stylesheet (served beside the bundled explorer.js; nothing is loaded from elsewhere).

/** The explorer's HTML: prompt and progress, the image with its token strip and map controls, the edit panel. */
export const EXPLORER_HTML = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>attnkit explorer</title>
<link rel="stylesheet" href="explorer.css">
</head>
<body>
<header>
  <h1>attnkit explorer</h1>
  <span id="model"></span>
</header>
<section id="run">
  <input id="prompt" size="40" value="a red circle on the left" aria-label="prompt">
  <label>seed <input id="seed" type="number" min="0" value="0"></label>
  <label>steps <input id="steps" type="number" min="1" max="100" value="15"></label>
  <button id="generate">Generate</button>
  <button id="cancel" disabled>Cancel</button>
  <label title="the fused flash kernel (off: the explicit softmax reference)"><input id="flash" type="checkbox" checked> flash</label>
  <label title="token merging on self-attention, ratio 0.5"><input id="tome" type="checkbox"> ToMe</label>
  <label title="reuse attention blocks every other step"><input id="cache" type="checkbox"> block caching</label>
  <div id="status" data-testid="status">ready</div>
  <progress id="progress" max="1" value="0"></progress>
</section>
<main>
  <section id="view">
    <canvas id="image" width="384" height="384" data-testid="image"></canvas>
    <div id="tokens" data-testid="tokens"></div>
    <div id="mapControls">
      <label>steps from <input id="stepFrom" type="range" min="0" max="15" value="0"> <span id="stepFromV">0</span></label>
      <label>to <input id="stepTo" type="range" min="1" max="15" value="15"> <span id="stepToV">15</span></label>
      <label>resolution <select id="res"><option value="">all</option><option>16</option><option>8</option><option>4</option></select></label>
      <fieldset id="places" title="the UNet blocks whose cross-attention is aggregated (DAAM: down and up)"><legend>blocks</legend>
        <label><input id="place-down" type="checkbox" checked> down</label>
        <label><input id="place-mid" type="checkbox"> mid</label>
        <label><input id="place-up" type="checkbox" checked> up</label>
      </fieldset>
      <label title="one cross-attention layer by module path (the list fills in after a run)">layer <select id="layer"><option value="">all of those blocks</option></select></label>
      <label title="one attention head, or the mean over heads">head <select id="head"><option value="">mean</option></select></label>
      <button id="remap">Update maps</button>
    </div>
    <canvas id="mask" width="192" height="192" data-testid="mask"></canvas>
  </section>
  <section id="edit">
    <h2>Edit</h2>
    <label>target <input id="target" size="34" placeholder="the prompt with a word changed (empty: reweight only)"></label>
    <label>method <select id="method"><option value="p2p">Prompt-to-Prompt</option><option value="masactrl">MasaCtrl</option><option value="pnp">Plug-and-Play</option></select></label>
    <label>edit <select id="p2p"><option value="auto">auto</option><option value="replace">word swap</option><option value="refine">refine</option><option value="reweight">reweight</option></select></label>
    <label>reweight <input id="rwWord" size="8" placeholder="word"> <input id="rwScale" type="range" min="-2" max="4" step="0.5" value="2"> <span id="rwScaleV">2</span></label>
    <label>LocalBlend words <input id="blend" size="16" placeholder="e.g. circle"></label>
    <button id="runEdit">Run edit</button>
    <div id="pair" data-testid="pair"><figure><img id="src" alt="source"><figcaption>source</figcaption></figure><figure><img id="tgt" alt="target"><figcaption>target</figcaption></figure></div>
  </section>
</main>
<script type="module" src="explorer.js"></script>
</body>
</html>
`;

/** The explorer's stylesheet. */
export const EXPLORER_CSS = `body { font: 14px system-ui, sans-serif; margin: 1rem; color: #222; }
header { display: flex; gap: 1rem; align-items: baseline; } h1 { font-size: 1.3rem; margin: 0; }
#run { display: flex; flex-wrap: wrap; gap: .6rem; align-items: center; margin: .8rem 0; }
#run input[type=number] { width: 4rem; } #status { min-width: 16rem; } progress { width: 12rem; }
main { display: flex; gap: 2rem; flex-wrap: wrap; }
canvas#image { width: 384px; height: 384px; image-rendering: pixelated; border: 1px solid #ccc; }
canvas#mask { width: 192px; height: 192px; image-rendering: pixelated; border: 1px solid #ccc; margin-top: .5rem; }
#tokens { display: flex; gap: .3rem; flex-wrap: wrap; margin: .5rem 0; max-width: 384px; }
#tokens button { border: 1px solid #888; background: #f4f4f4; border-radius: 3px; padding: .1rem .4rem; cursor: pointer; }
#tokens button.on { background: #ffd54f; }
#mapControls, #edit { display: flex; flex-direction: column; gap: .4rem; }
#places { display: flex; gap: .6rem; border: 1px solid #ccc; padding: .1rem .5rem .3rem; margin: 0; max-width: 360px; }
#layer { max-width: 330px; }
#pair { display: flex; gap: .5rem; } #pair img { width: 192px; height: 192px; image-rendering: pixelated; border: 1px solid #ccc; }
figure { margin: 0; } figcaption { text-align: center; }
`;
