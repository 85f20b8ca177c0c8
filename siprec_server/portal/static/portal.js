// Hangtár portal: the waveform under the player. No framework, nothing fetched from elsewhere.
// The page works without this script; with it, the waveform shows where the call is loud and where silent,
// follows playback, and a click on it jumps there (the player's own controls stay the keyboard way).
"use strict";

(function () {
  function drawWaveform(canvas, peaks, position) {
    var ratio = window.devicePixelRatio || 1;
    var width = canvas.clientWidth || 600;
    var height = canvas.clientHeight || 120;
    if (canvas.width !== Math.round(width * ratio) || canvas.height !== Math.round(height * ratio)) {
      canvas.width = Math.round(width * ratio);
      canvas.height = Math.round(height * ratio);
    }
    var ctx = canvas.getContext("2d");
    ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
    ctx.clearRect(0, 0, width, height);
    var style = getComputedStyle(canvas);
    var played = style.getPropertyValue("--wave-played").trim() || "#1f5fa8";
    var rest = style.getPropertyValue("--wave-rest").trim() || "#8aa6c8";
    var channels = peaks.channels;
    var lane = height / Math.max(1, channels.length);
    var scale = peaks.scale || 127;
    var playedX = peaks.duration > 0 ? (position / peaks.duration) * width : 0;
    channels.forEach(function (channel, index) {
      var count = channel.min.length;
      if (!count) { return; }
      var middle = lane * index + lane / 2;
      var half = lane / 2 - 2;
      var step = width / count;
      for (var i = 0; i < count; i++) {
        var x = i * step;
        var top = middle - (channel.max[i] / scale) * half;
        var bottom = middle - (channel.min[i] / scale) * half;
        ctx.fillStyle = x < playedX ? played : rest;
        ctx.fillRect(x, top, Math.max(1, step - 0.25), Math.max(1, bottom - top));
      }
    });
    if (playedX > 0) {
      ctx.fillStyle = played;
      ctx.fillRect(Math.min(width - 1, playedX), 0, 1, height);
    }
  }

  function setUpWaveform(canvas) {
    var player = document.getElementById(canvas.dataset.player);
    var peaks = null;
    function redraw() {
      if (peaks) { drawWaveform(canvas, peaks, player ? player.currentTime : 0); }
    }
    fetch(canvas.dataset.src, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (response) {
        if (!response.ok) { throw new Error("waveform: " + response.status); }
        return response.json();
      })
      .then(function (data) {
        peaks = data;
        canvas.classList.add("ready");
        redraw();
      })
      .catch(function () { canvas.classList.add("unavailable"); });
    if (player) {
      player.addEventListener("timeupdate", redraw);
      player.addEventListener("seeked", redraw);
      canvas.addEventListener("click", function (event) {
        if (!peaks || !peaks.duration) { return; }
        var box = canvas.getBoundingClientRect();
        var fraction = Math.min(1, Math.max(0, (event.clientX - box.left) / box.width));
        player.currentTime = fraction * peaks.duration;
        redraw();
      });
    }
    window.addEventListener("resize", redraw);
  }

  document.addEventListener("DOMContentLoaded", function () {
    var canvas = document.getElementById("waveform");
    if (canvas && canvas.dataset.src) { setUpWaveform(canvas); }
  });
})();
