package io.hfconnector.bench;

import org.springframework.boot.SpringApplication;
import org.springframework.boot.autoconfigure.SpringBootApplication;

/**
 * Camunda's connector runtime, as connector-runtime-application starts it: the auto-configuration of
 * spring-boot-starter-camunda-connectors finds the connectors on the class path (here the REST
 * connector, job type io.camunda:http-json:1). Configured by environment only (bench/camunda.py).
 */
@SpringBootApplication
public class CamundaRuntime {
  public static void main(String[] args) {
    SpringApplication.run(CamundaRuntime.class, args);
  }
}
