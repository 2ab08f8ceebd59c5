// The dashboard's charts (templates/admin/dashboard.html): the series as lines and bars and the
// cross-BU flow as a Sankey, drawn with the vendored ECharts from the data the page embeds.
"use strict";

document.addEventListener("DOMContentLoaded", function () {
  var data = JSON.parse(document.getElementById("dashboard-data").textContent);
  var seriesChart = echarts.init(document.getElementById("series-chart"));
  var bars = ["issued", "redeemed", "expired"];
  seriesChart.setOption({
    tooltip: {trigger: "axis"},
    legend: {},
    grid: {left: 60, right: 60},
    xAxis: {type: "category", data: data.periods},
    yAxis: [{type: "value", name: data.labels.issued}, {type: "value", name: data.labels.active_members}],
    series: bars.map(function (key) {
      return {name: data.labels[key], type: "bar", data: data.series[key]};
    }).concat([
      {name: data.labels.active_members, type: "line", yAxisIndex: 1, data: data.series.active_members},
      {name: data.labels.postings, type: "line", yAxisIndex: 1, data: data.series.postings}
    ])
  });
  var flowChart = echarts.init(document.getElementById("flow-chart"));
  flowChart.setOption({
    tooltip: {trigger: "item"},
    series: [{type: "sankey", emphasis: {focus: "adjacency"}, data: data.sankey.nodes, links: data.sankey.links}]
  });
  window.addEventListener("resize", function () { seriesChart.resize(); flowChart.resize(); });
});
