//! Metric values as JSON, for the `--format json` of the commands that print them: a NaN (a
//! category without ground truth) is not valid JSON, so it is written `null`.

/// One metric value: the number, or `null` for a NaN or an infinity.
pub fn number(v: f64) -> serde_json::Value {
    serde_json::Number::from_f64(v).map_or(serde_json::Value::Null, serde_json::Value::Number)
}

/// `key: value` metrics as one JSON object, in their order.
pub fn metrics_object(metrics: &[(String, f64)]) -> serde_json::Value {
    let obj: serde_json::Map<String, serde_json::Value> = (metrics.iter())
        .map(|(k, v)| (k.clone(), number(*v)))
        .collect();
    serde_json::Value::Object(obj)
}
